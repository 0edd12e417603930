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
