//! `Table` on DynamoDB (aws-sdk-dynamodb).
//!
//! The port's semantics, in DynamoDB terms:
//! - Expired items: TTL deletes them lazily (up to days later), so every read filters on
//!   `expires_at` against the adapter's clock, and every condition treats an expired item as
//!   absent (`attribute_not_exists(pk) OR expires_at <= :now`).
//! - Conditions answer the item as it stood (`ReturnValuesOnConditionCheckFailure=ALL_OLD`).
//! - A transaction cancelled by a concurrent transaction on the same item
//!   (`TransactionConflict`) is retried; one cancelled by a condition is a `Conflict` naming the
//!   write.
//! - A query page holds up to `limit` live items: DynamoDB applies `Limit` before the expiry
//!   filter, so the adapter keeps reading until the page is full or the partition ends.
//!
//! Every attribute name goes through a `#placeholder`, so reserved words (`status`…) are safe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update as UpdateAction,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Number, Value};

use crate::ports::Clock;
use crate::ports::table::{
    Cond, Cursor, EXPIRES_AT, Index, Item, Key, PK, Page, Query, SK, SortKey, Table, TableError,
    Update, Write, is_expired, validate_transaction,
};

/// The secondary index's name in `template.yaml`.
pub const GSI1: &str = "gsi1";
/// How often a transaction cancelled only by concurrent transactions is tried again.
const TRANSACTION_CONFLICT_RETRIES: u32 = 8;

pub struct DynamoTable {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

type Attributes = HashMap<String, AttributeValue>;

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().as_second()
    }

    fn live(&self, attributes: Option<&Attributes>) -> Result<Option<Item>, TableError> {
        let Some(attributes) = attributes else {
            return Ok(None);
        };
        let item = from_attributes(attributes)?;
        Ok((!is_expired(&item, self.now())).then_some(item))
    }

    fn conflict(&self, write: usize, old: Option<&Attributes>) -> TableError {
        match self.live(old) {
            Ok(existing) => TableError::Conflict {
                write,
                existing: existing.map(Box::new),
            },
            Err(e) => e,
        }
    }
}

/// A condition expression with its names and values.
#[derive(Default)]
struct Expression {
    text: Option<String>,
    names: HashMap<String, String>,
    values: Attributes,
}

impl Expression {
    fn name(&mut self, name: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        // One placeholder per distinct name.
        if let Some((existing, _)) = self.names.iter().find(|(_, v)| *v == name) {
            return existing.clone();
        }
        self.names.insert(placeholder.clone(), name.to_string());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Attributes> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// The condition expression for `cond`, where an expired item counts as absent.
///
/// An update builds on the stored item, so for updates `Always` and `NotExists` also refuse an
/// expired item still in the table: the adapter removes it and tries again (see `update`).
fn condition(
    cond: &Cond,
    now: i64,
    expression: &mut Expression,
    for_update: bool,
) -> Result<(), TableError> {
    // Names and values are registered only when the text uses them: DynamoDB refuses unused ones.
    let alive = |e: &mut Expression| {
        let expires = e.name(EXPIRES_AT);
        let now = e.value(AttributeValue::N(now.to_string()));
        format!("(attribute_not_exists({expires}) OR {expires} > {now})")
    };
    expression.text = match cond {
        Cond::Always if !for_update => None,
        Cond::Always => {
            let pk = expression.name(PK);
            Some(format!(
                "attribute_not_exists({pk}) OR {}",
                alive(expression)
            ))
        }
        Cond::NotExists if for_update => {
            Some(format!("attribute_not_exists({})", expression.name(PK)))
        }
        Cond::NotExists => {
            let pk = expression.name(PK);
            let expires = expression.name(EXPIRES_AT);
            let now = expression.value(AttributeValue::N(now.to_string()));
            Some(format!("attribute_not_exists({pk}) OR {expires} <= {now}"))
        }
        Cond::Exists => {
            let pk = expression.name(PK);
            Some(format!("attribute_exists({pk}) AND {}", alive(expression)))
        }
        Cond::Equals(name, value) => {
            let name = expression.name(name);
            let value = expression.value(to_attribute(value)?);
            Some(format!("{name} = {value} AND {}", alive(expression)))
        }
        Cond::Below(name, limit) => {
            let name = expression.name(name);
            let limit = expression.value(AttributeValue::N(limit.to_string()));
            let below = format!("(attribute_not_exists({name}) OR {name} < {limit})");
            if for_update {
                // An update must not add onto an expired counter: refuse it, then remove and retry.
                let pk = expression.name(PK);
                Some(format!(
                    "{below} AND (attribute_not_exists({pk}) OR {})",
                    alive(expression)
                ))
            } else {
                // An expired item counts as absent, whatever its counter says.
                let expires = expression.name(EXPIRES_AT);
                let now = expression.value(AttributeValue::N(now.to_string()));
                Some(format!("{below} OR {expires} <= {now}"))
            }
        }
    };
    Ok(())
}

/// `SET`/`ADD` clauses of an update, added to an expression.
fn update_expression(update: &Update, expression: &mut Expression) -> Result<String, TableError> {
    update.validate()?; // refuses key attributes, as every adapter must
    let mut clauses = Vec::new();
    let mut sets = Vec::new();
    for (name, value) in &update.set {
        let (name, value) = (
            expression.name(name),
            expression.value(to_attribute(value)?),
        );
        sets.push(format!("{name} = {value}"));
    }
    for (name, value) in update.inits() {
        let (name, value) = (
            expression.name(name),
            expression.value(to_attribute(value)?),
        );
        sets.push(format!("{name} = if_not_exists({name}, {value})"));
    }
    if !sets.is_empty() {
        clauses.push(format!("SET {}", sets.join(", ")));
    }
    if !update.add.is_empty() {
        let mut adds = Vec::new();
        for (name, delta) in &update.add {
            let (name, delta) = (
                expression.name(name),
                expression.value(AttributeValue::N(delta.to_string())),
            );
            adds.push(format!("{name} {delta}"));
        }
        clauses.push(format!("ADD {}", adds.join(", ")));
    }
    if clauses.is_empty() {
        return Err(TableError::Invalid(
            "an update must set or add something".into(),
        ));
    }
    Ok(clauses.join(" "))
}

fn key_attributes(key: &Key) -> Attributes {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

/// JSON to DynamoDB: strings, integers, booleans, null, lists and maps. Floats are refused.
pub fn to_attribute(value: &Value) -> Result<AttributeValue, TableError> {
    Ok(match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) if n.is_i64() || n.is_u64() => AttributeValue::N(n.to_string()),
        Value::Number(_) => return Err(TableError::Invalid("numbers must be integers".into())),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(values) => {
            AttributeValue::L(values.iter().map(to_attribute).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), to_attribute(v)?)))
                .collect::<Result<_, TableError>>()?,
        ),
    })
}

fn to_attributes(item: &Item) -> Result<Attributes, TableError> {
    item.iter()
        .map(|(k, v)| Ok((k.clone(), to_attribute(v)?)))
        .collect()
}

fn from_attribute(value: &AttributeValue) -> Result<Value, TableError> {
    Ok(match value {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(
            n.parse::<i64>()
                .map(Number::from)
                .or_else(|_| n.parse::<u64>().map(Number::from))
                .map_err(|_| {
                    TableError::Backend(format!("stored number {n} is not an integer").into())
                })?,
        ),
        AttributeValue::L(values) => Value::Array(
            values
                .iter()
                .map(from_attribute)
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::M(map) => Value::Object(from_attributes(map)?),
        other => {
            return Err(TableError::Backend(
                format!("unsupported stored attribute {other:?}").into(),
            ));
        }
    })
}

fn from_attributes(attributes: &Attributes) -> Result<Item, TableError> {
    attributes
        .iter()
        .map(|(k, v)| Ok((k.clone(), from_attribute(v)?)))
        .collect()
}

fn backend<E: std::error::Error + Send + Sync + 'static>(error: E) -> TableError {
    TableError::backend(error)
}

/// An SDK failure: DynamoDB's `ValidationException` is a wrong request (the port's `Invalid`),
/// anything else a backend failure.
fn sdk_error<E, R>(error: SdkError<E, R>) -> TableError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error.as_service_error() {
        Some(e) if e.code() == Some("ValidationException") => {
            TableError::Invalid(e.message().unwrap_or("ValidationException").to_string())
        }
        _ => TableError::backend(error),
    }
}

impl DynamoTable {
    /// One transaction write in DynamoDB's form.
    fn transact_item(&self, write: &Write) -> Result<TransactWriteItem, TableError> {
        let mut expression = Expression::default();
        condition(write.cond(), self.now(), &mut expression, false)?;
        let all_old = ReturnValuesOnConditionCheckFailure::AllOld;
        let put = |item: &Item| -> Result<_, TableError> {
            Ok(TransactWriteItem::builder().put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(to_attributes(item)?))
                    .set_condition_expression(expression.text.clone())
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .return_values_on_condition_check_failure(all_old.clone())
                    .build()
                    .map_err(backend)?,
            ))
        };
        let built = match write {
            Write::Put { item, .. } => put(item)?,
            // DynamoDB stores maps: the rendered text is parsed here, off the embedded hot path.
            Write::PutRendered { row } => put(&row.to_item()?)?,
            Write::Update { key, update, .. } => {
                let update = update_expression(update, &mut expression)?;
                TransactWriteItem::builder().update(
                    UpdateAction::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)))
                        .update_expression(update)
                        .set_condition_expression(expression.text.clone())
                        .set_expression_attribute_names(expression.names())
                        .set_expression_attribute_values(expression.values())
                        .return_values_on_condition_check_failure(all_old)
                        .build()
                        .map_err(backend)?,
                )
            }
            Write::Delete { key, .. } => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .set_condition_expression(expression.text.clone())
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .return_values_on_condition_check_failure(all_old)
                    .build()
                    .map_err(backend)?,
            ),
            Write::Check { key, cond } => {
                // A check with no condition checks nothing; DynamoDB needs one, so: always true.
                let text = match expression.text.clone() {
                    Some(text) => text,
                    None if matches!(cond, Cond::Always) => {
                        let pk = expression.name(PK);
                        format!("attribute_exists({pk}) OR attribute_not_exists({pk})")
                    }
                    None => unreachable!("only Always has no expression"),
                };
                TransactWriteItem::builder().condition_check(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_attributes(key)))
                        .condition_expression(text)
                        .set_expression_attribute_names(expression.names())
                        .set_expression_attribute_values(expression.values())
                        .return_values_on_condition_check_failure(all_old)
                        .build()
                        .map_err(backend)?,
                )
            }
        };
        Ok(built.build())
    }

    /// A single write, as a one-item operation (cheaper than a transaction), answering the
    /// item after an update and the removed item after a delete.
    async fn write_one(&self, write: Write) -> Result<Option<Attributes>, TableError> {
        // Refused here as on every adapter (DynamoDB refuses an empty key too; its emulator
        // does not).
        write.key_parts()?;
        let mut expression = Expression::default();
        condition(
            write.cond(),
            self.now(),
            &mut expression,
            matches!(write, Write::Update { .. }),
        )?;
        let all_old = ReturnValuesOnConditionCheckFailure::AllOld;
        match &write {
            Write::Put { item, .. } => {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(to_attributes(item)?))
                    .set_condition_expression(expression.text.clone())
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .return_values_on_condition_check_failure(all_old)
                    .send()
                    .await;
                result.map(|_| None).map_err(|error| {
                    self.single_write_error(error, |e| match e {
                        PutItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    })
                })
            }
            Write::Update { key, update, .. } => {
                let update = update_expression(update, &mut expression)?;
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .update_expression(update)
                    .set_condition_expression(expression.text.clone())
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .return_values(ReturnValue::AllNew)
                    .return_values_on_condition_check_failure(all_old)
                    .send()
                    .await;
                result.map(|output| output.attributes).map_err(|error| {
                    self.single_write_error(error, |e| match e {
                        UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    })
                })
            }
            Write::Delete { key, .. } => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attributes(key)))
                    .set_condition_expression(expression.text.clone())
                    .set_expression_attribute_names(expression.names())
                    .set_expression_attribute_values(expression.values())
                    .return_values(ReturnValue::AllOld)
                    .return_values_on_condition_check_failure(all_old)
                    .send()
                    .await;
                result.map(|output| output.attributes).map_err(|error| {
                    self.single_write_error(error, |e| match e {
                        DeleteItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    })
                })
            }
            Write::Check { .. } => Err(TableError::Invalid(
                "a check only makes sense in a transaction".into(),
            )),
            Write::PutRendered { .. } => Err(TableError::Invalid(
                "a rendered put is written by `transact`".into(),
            )),
        }
    }

    /// A single write's failure: a failed condition is a `Conflict` with the live item as it
    /// stood (DynamoDB answers it because every write asks for `ALL_OLD` on failure).
    fn single_write_error<E, R>(
        &self,
        error: SdkError<E, R>,
        old_item: impl FnOnce(E) -> Option<Attributes>,
    ) -> TableError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match error {
            SdkError::ServiceError(e)
                if e.err().code() == Some("ConditionalCheckFailedException") =>
            {
                let old = old_item(e.into_err());
                self.conflict(0, old.as_ref())
            }
            other => sdk_error(other),
        }
    }

    /// Removes an item only if it has expired: the first step of writing over an expired item,
    /// which DynamoDB still holds until TTL gets to it.
    async fn remove_expired(&self, key: &Key) -> Result<(), TableError> {
        let mut expression = Expression::default();
        let expires = expression.name(EXPIRES_AT);
        let now = expression.value(AttributeValue::N(self.now().to_string()));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .condition_expression(format!("{expires} <= {now}"))
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else replaced it meanwhile: nothing expired is left to remove.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(sdk_error(e)),
        }
    }
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        self.live(output.item.as_ref())
    }

    async fn put(&self, item: Item, cond: Cond) -> Result<(), TableError> {
        Key::of(&item)?;
        self.write_one(Write::Put { item, cond }).await.map(drop)
    }

    async fn update(&self, key: &Key, update: Update, cond: Cond) -> Result<Item, TableError> {
        // An update must not build on an expired item's attributes, which DynamoDB may still
        // hold: the condition refuses one, and it is removed before the one retry.
        let write = Write::Update {
            key: key.clone(),
            update,
            cond: cond.clone(),
        };
        let attributes = match self.write_one(write.clone()).await {
            Err(TableError::Conflict { existing: None, .. })
                if matches!(cond, Cond::Always | Cond::NotExists | Cond::Below(..)) =>
            {
                self.remove_expired(key).await?;
                self.write_one(write).await?
            }
            other => other?,
        }
        .ok_or_else(|| TableError::Backend("update answered no item".into()))?;
        from_attributes(&attributes)
    }

    async fn delete(&self, key: &Key, cond: Cond) -> Result<Option<Item>, TableError> {
        let old = self
            .write_one(Write::Delete {
                key: key.clone(),
                cond,
            })
            .await?;
        self.live(old.as_ref())
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        query.validate()?;
        let mut expression = Expression::default();
        let (partition_name, sort_name) = match query.index {
            Index::Primary => (PK, SK),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
        };
        let partition = expression.name(partition_name);
        let partition_value = expression.value(AttributeValue::S(query.partition.clone()));
        let mut key_condition = format!("{partition} = {partition_value}");
        match &query.sort {
            SortKey::Any => {}
            SortKey::Prefix(prefix) => {
                let (sort, prefix) = (
                    expression.name(sort_name),
                    expression.value(AttributeValue::S(prefix.clone())),
                );
                key_condition.push_str(&format!(" AND begins_with({sort}, {prefix})"));
            }
            SortKey::Between(from, to) => {
                let sort = expression.name(sort_name);
                let from = expression.value(AttributeValue::S(from.clone()));
                let to = expression.value(AttributeValue::S(to.clone()));
                key_condition.push_str(&format!(" AND {sort} BETWEEN {from} AND {to}"));
            }
        }
        let expires = expression.name(EXPIRES_AT);
        let now = expression.value(AttributeValue::N(self.now().to_string()));
        let filter = format!("attribute_not_exists({expires}) OR {expires} > {now}");

        let mut items = Vec::new();
        let mut start = query.after.as_ref().map(decode_cursor).transpose()?;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name((query.index == Index::Gsi1).then(|| GSI1.to_string()))
                .key_condition_expression(&key_condition)
                .filter_expression(&filter)
                .set_expression_attribute_names(expression.names())
                .set_expression_attribute_values(expression.values())
                .scan_index_forward(!query.descending)
                .limit((query.limit - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .consistent_read(query.index == Index::Primary)
                .send()
                .await
                .map_err(sdk_error)?;
            for attributes in output.items() {
                items.push(from_attributes(attributes)?);
            }
            match output.last_evaluated_key {
                Some(last) if items.len() < query.limit => start = Some(last),
                Some(last) => {
                    return Ok(Page {
                        items,
                        next: Some(encode_cursor(&last)),
                    });
                }
                None => return Ok(Page { items, next: None }),
            }
        }
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&writes)?;
        let mut attempt = 0;
        loop {
            let items = writes
                .iter()
                .map(|w| self.transact_item(w))
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let cancelled = match result {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled,
                    other if other.code() == Some("ValidationException") => {
                        return Err(TableError::Invalid(
                            other.message().unwrap_or("ValidationException").to_string(),
                        ));
                    }
                    other => return Err(backend(other)),
                },
                Err(e) => return Err(sdk_error(e)),
            };
            let reasons = cancelled.cancellation_reasons();
            if let Some((index, reason)) = reasons
                .iter()
                .enumerate()
                .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            {
                return Err(self.conflict(index, reason.item()));
            }
            let only_conflicts = reasons
                .iter()
                .all(|r| matches!(r.code(), Some("None" | "TransactionConflict") | None));
            if !only_conflicts || attempt >= TRANSACTION_CONFLICT_RETRIES {
                return Err(backend(cancelled));
            }
            attempt += 1;
            // Jittered backoff: the competing transaction finishes within milliseconds.
            let jitter = rand::random::<u64>() % 20;
            tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
        }
    }
}

fn encode_cursor(last: &Attributes) -> Cursor {
    let strings: HashMap<&str, &str> = last
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    Cursor(B64.encode(serde_json::to_vec(&strings).expect("strings serialise")))
}

fn decode_cursor(cursor: &Cursor) -> Result<Attributes, TableError> {
    let strings: HashMap<String, String> = B64
        .decode(&cursor.0)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| TableError::Invalid("malformed query cursor".into()))?;
    Ok(strings
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}
