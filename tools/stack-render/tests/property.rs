//! Free text in any field never changes the structure of a rendered file: every YAML and
//! JSON file still parses, and each value reads back exactly where it was put.

use proptest::prelude::*;
use stack_config::Stack;
use stack_config::types::KeyPrefix;
use stack_render::{Templates, render};
use yaml_rust2::{Yaml, YamlLoader};

/// Text that has broken YAML generators before, and arbitrary Unicode.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("yes".to_owned()),
        Just("0123".to_owned()),
        Just("~".to_owned()),
        Just("*alias".to_owned()),
        Just("&anchor".to_owned()),
        Just("# comment".to_owned()),
        Just("  leading spaces".to_owned()),
        Just("trailing: colon:".to_owned()),
        Just("multi\nline\n".to_owned()),
        Just("'single' \"double\" `back`".to_owned()),
        Just("{{ not a template }}".to_owned()),
        Just("- item".to_owned()),
        Just("null".to_owned()),
        "\\PC{0,40}",
        "[\\PC\\n\\t'\":#&*~ ]{0,40}",
    ]
}

/// A key prefix: anything without whitespace, at most 64 bytes.
fn prefix() -> impl Strategy<Value = String> {
    "[^\\s]{0,20}".prop_filter("fits a key prefix", |p| KeyPrefix::new(p.clone()).is_ok())
}

fn parse(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|error| panic!("parses: {error}\n{text}"))
}

/// The first document of `file` whose `kind` is `kind`.
fn find(docs: &[Yaml], kind: &str) -> Yaml {
    docs.iter()
        .find(|doc| doc["kind"].as_str() == Some(kind))
        .cloned()
        .unwrap_or_else(|| panic!("a {kind}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn values_read_back_exactly(user in nasty(), key in nasty(), key_prefix in prefix()) {
        let mut stack = Stack::default();
        stack.observability.grafana.admin.user = user.clone();
        stack.redis.auth.secret.key = key.clone();
        stack.redis.key_prefix = KeyPrefix::new(key_prefix.clone()).expect("valid");
        let rendered = render(&stack, &Templates::embedded()).expect("renders");

        for (path, text) in &rendered.files {
            if path.ends_with(".yaml") || path.ends_with(".yml") {
                parse(text);
            } else if path.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(text).expect("JSON parses");
            }
        }

        let grafana = parse(&rendered.files["k8s/grafana.yaml"]);
        let deployment = find(&grafana, "Deployment");
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_vec().expect("env").clone();
        let admin = env.iter().find(|e| e["name"].as_str() == Some("GF_SECURITY_ADMIN_USER")).expect("admin user");
        prop_assert_eq!(admin["value"].as_str(), Some(user.as_str()));
        let password = env.iter().find(|e| e["name"].as_str() == Some("GF_SECURITY_ADMIN_PASSWORD")).expect("password");
        prop_assert_eq!(password["valueFrom"]["secretKeyRef"]["key"].as_str(), Some("password"));

        let server = parse(&rendered.files["k8s/server.yaml"]);
        let deployment = find(&server, "Deployment");
        let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"][0];
        prop_assert_eq!(env["valueFrom"]["secretKeyRef"]["key"].as_str(), Some(key.as_str()));
        let redis = parse(&rendered.files["k8s/redis.yaml"]);
        let statefulset = find(&redis, "StatefulSet");
        let env = &statefulset["spec"]["template"]["spec"]["containers"][0]["env"][0];
        prop_assert_eq!(env["valueFrom"]["secretKeyRef"]["key"].as_str(), Some(key.as_str()));

        // The ConfigMap holds the resolved stack byte for byte, and it reads back.
        let config_map = find(&server, "ConfigMap");
        let embedded = config_map["data"]["stack.yaml"].as_str().expect("stack.yaml").to_owned();
        prop_assert_eq!(&embedded, &rendered.files["configs/stack.yaml"]);
        let resolved = parse(&embedded);
        prop_assert_eq!(resolved[0]["redis"]["key_prefix"].as_str(), Some(key_prefix.as_str()));
        prop_assert_eq!(resolved[0]["redis"]["auth"]["secret"]["key"].as_str(), Some(key.as_str()));
        prop_assert_eq!(
            resolved[0]["observability"]["grafana"]["admin"]["user"].as_str(),
            Some(user.as_str())
        );

        // The docker run script assigns the prefix as one shell word.
        let script = &rendered.files["local/docker-run.sh"];
        let assignment = script
            .lines()
            .find(|line| line.starts_with("key_prefix="))
            .expect("the prefix is assigned")
            .to_owned();
        let output = std::process::Command::new("bash")
            .args(["-c", &format!("{assignment}\nprintf %s \"$key_prefix\"")])
            .output()
            .expect("bash runs");
        prop_assert_eq!(String::from_utf8_lossy(&output.stdout).into_owned(), key_prefix);
    }
}
