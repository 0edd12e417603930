//! `/api/openapi.json` describes every route, and an independent validator
//! (openapi-spec-validator, from the virtual environment `infra/test` installs) accepts it as
//! OpenAPI 3.1.

use std::path::Path;
use std::process::Command;

use shared::routes::ROUTES;
use shared::routes::openapi::document;

#[test]
fn the_document_describes_every_route() {
    let document = document();
    for route in ROUTES {
        for method in route.methods {
            let operation = &document["paths"][route.path][method.to_lowercase()];
            assert!(operation.is_object(), "{method} {} is missing", route.path);
            assert!(operation["responses"].is_object());
            if route.request.is_some() {
                assert!(
                    operation["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{method} {}",
                    route.path
                );
            }
            assert_eq!(
                operation.get("security").is_some(),
                route.access != shared::caller::Access::Public,
                "{method} {}",
                route.path
            );
        }
    }
    // Every reference resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "#/components/schemas/{name} is referenced but missing"
        );
    }
}

#[test]
fn an_independent_validator_accepts_it_as_openapi_3_1() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run the tests through infra/test, which installs it",
        python.display()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), document().to_string()).unwrap();
    let output = Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
