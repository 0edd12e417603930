//! `template.yaml`, the route table, the dashboard's gateway routes, the job table and
//! `functions/` describe one set of
//! functions: every function crate is declared in the template with the route (or schedule)
//! the local runner serves it at, and the template declares nothing else.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use shared::jobs::JOBS;
use shared::routes::ROUTES;

/// The template as JSON, read with cfn-lint's CloudFormation-aware YAML loader (from the
/// virtual environment `infra/test` installs).
fn template(root: &Path) -> Value {
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests through infra/test, which installs it",
        python.display()
    );
    let output = Command::new(python)
        .args(["-c", "import json, sys; from cfnlint.decode import decode; t, e = decode(sys.argv[1]); assert not e, e; print(json.dumps(t, default=str))"])
        .arg(root.join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn template_routes_and_function_crates_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = template(&root);

    let mut declared_routes = BTreeSet::new();
    let mut declared_schedules = BTreeSet::new();
    let mut declared_functions = BTreeSet::new();
    for (name, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{name}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_string();
        for event in resource["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
        {
            match event["Type"].as_str() {
                Some("HttpApi") => {
                    let method = event["Properties"]["Method"]
                        .as_str()
                        .unwrap()
                        .to_uppercase();
                    let path = event["Properties"]["Path"].as_str().unwrap().to_string();
                    declared_routes.insert((binary.clone(), method, path));
                }
                Some("ScheduleV2" | "Schedule") => {
                    let expression = event["Properties"]["ScheduleExpression"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    declared_schedules.insert((binary.clone(), expression));
                }
                other => panic!("{name}: unexpected event type {other:?}"),
            }
        }
        assert!(
            declared_functions.insert(binary.clone()),
            "{binary} is declared twice"
        );
    }

    let served_routes: BTreeSet<_> = ROUTES
        .iter()
        .flat_map(|r| {
            r.methods
                .iter()
                .map(|m| (r.function.to_string(), m.to_string(), r.path.to_string()))
        })
        .chain(
            shared::web::GATEWAY_ROUTES
                .iter()
                .map(|(method, path)| ("web".to_string(), method.to_string(), path.to_string())),
        )
        .collect();
    assert_eq!(
        declared_routes, served_routes,
        "template routes = the local runner's routes"
    );
    let served_schedules: BTreeSet<_> = JOBS
        .iter()
        .map(|j| (j.name.to_string(), j.schedule.to_string()))
        .collect();
    assert_eq!(
        declared_schedules, served_schedules,
        "template schedules = the job table"
    );

    let crates: BTreeSet<String> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        declared_functions, crates,
        "template functions = functions/*"
    );
    let known: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| r.function.to_string())
        .chain(JOBS.iter().map(|j| j.name.to_string()))
        .chain(["web".to_string()])
        .collect();
    assert_eq!(crates, known, "functions/* = routes and jobs");
}

/// The payer on 1099s filed with the IRS must be the deployer's own: the template gives no
/// demo default for any payer parameter (the local runner's demo EIN is fake).
#[test]
fn the_1099_payer_has_no_default_on_aws() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = template(&root);
    let payer: Vec<(&String, &Value)> = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("Payer"))
        .collect();
    assert_eq!(
        payer.len(),
        7,
        "name, EIN, address, city, state, ZIP and phone"
    );
    for (name, parameter) in payer {
        assert!(
            parameter.get("Default").is_none(),
            "{name} has a default: {}",
            parameter["Default"]
        );
    }
}

/// `leadsrefer provision` makes the table, bucket and key as the template declares them: the
/// same index, TTL attribute, backups, versioning, encryption and lifecycle rules.
#[test]
fn provision_makes_what_the_template_declares() {
    use shared::adapters::provision::LIFECYCLE;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = template(&root);
    let resources = &template["Resources"];
    let table = &resources["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["GlobalSecondaryIndexes"][0]["IndexName"],
        shared::adapters::dynamodb::GSI1
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        shared::ports::table::EXPIRES_AT
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(resources["Key"]["Properties"]["EnableKeyRotation"], true);
    let bucket = &resources["Bucket"]["Properties"];
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let by_default = &bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
    assert_eq!(
        by_default["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "aws:kms"
    );
    assert_eq!(by_default["BucketKeyEnabled"], true);
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][setting], true);
    }
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), LIFECYCLE.len());
    for (rule, shape) in rules.iter().zip(&LIFECYCLE) {
        assert_eq!(rule["Id"], shape.id);
        assert_eq!(rule["Status"], "Enabled");
        assert_eq!(rule["Prefix"].as_str(), shape.prefix, "{}", shape.id);
        assert_eq!(
            rule["ExpirationInDays"].as_i64(),
            shape.expiration_days.map(i64::from),
            "{}",
            shape.id
        );
        assert_eq!(
            rule["NoncurrentVersionExpiration"]["NoncurrentDays"].as_i64(),
            shape.noncurrent_days.map(i64::from),
            "{}",
            shape.id
        );
        assert_eq!(
            rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_i64(),
            shape.abort_multipart_days.map(i64::from),
            "{}",
            shape.id
        );
    }
    let policy = &resources["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(policy["Sid"], "TlsOnly");
    assert_eq!(policy["Condition"]["Bool"]["aws:SecureTransport"], "false");
}
