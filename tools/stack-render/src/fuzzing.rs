//! Entry points for the fuzz targets in `fuzz/` (not part of the API): each checks one
//! quoting rule of [`quote`](crate::quote) on any text, the way the unit property tests do,
//! so that a coverage-guided fuzzer can search for a text that escapes its quoting.

use crate::quote::{block_scalar, json_string, must_escape, shell_word, yaml};

/// Checks that `text` written by every filter reads back exactly with libyaml, yaml-rust2
/// and serde_json, and that no output holds a character that must be escaped. Returns what
/// went wrong.
pub fn check_quoting(text: &str) -> Result<(), String> {
    let quoted = json_string(text);
    if let Some(raw) = quoted.chars().find(|c| must_escape(*c)) {
        return Err(format!("json_string wrote {raw:?} raw"));
    }
    let json: String = serde_json::from_str(&quoted).map_err(|e| format!("JSON: {e}"))?;
    same("JSON", &json, text)?;
    let document = format!("k:\n  v: {quoted}\nafter: 1\n");
    let (libyaml, rust2) = read_both(&document)?;
    same("libyaml, quoted", &libyaml, text)?;
    same("yaml-rust2, quoted", &rust2, text)?;

    if let Some(block) = block_scalar(text, 4) {
        let document = format!("k:\n  v: {block}\nafter: 1\n");
        let (libyaml, rust2) = read_both(&document)?;
        same("libyaml, block", &libyaml, text)?;
        same("yaml-rust2, block", &rust2, text)?;
    }

    let document = yaml(&serde_json::json!({
        "k": { "v": text },
        "keys": { text: 1 },
        "after": 1,
    }));
    if let Some(raw) = document.chars().find(|c| must_escape(*c) && *c != '\n') {
        return Err(format!("yaml wrote {raw:?} raw"));
    }
    let (libyaml, rust2) = read_both(&document)?;
    same("libyaml, nested", &libyaml, text)?;
    same("yaml-rust2, nested", &rust2, text)?;
    let libyaml: serde_yaml::Value =
        serde_yaml::from_str(&document).map_err(|e| format!("libyaml: {e}"))?;
    let keys: Vec<&str> = libyaml["keys"]
        .as_mapping()
        .map(|map| map.keys().filter_map(serde_yaml::Value::as_str).collect())
        .unwrap_or_default();
    if keys != [text] {
        return Err(format!("libyaml read the key {text:?} as {keys:?}"));
    }

    match shell_word(text) {
        Err(_) if text.contains('\0') => {}
        Err(error) => return Err(format!("shell_word refused {text:?}: {error}")),
        Ok(word) => {
            if let Some(raw) = word.chars().find(|c| must_escape(*c)) {
                return Err(format!("shell_word wrote {raw:?} raw"));
            }
        }
    }
    Ok(())
}

fn same(what: &str, read: &str, text: &str) -> Result<(), String> {
    if read == text {
        Ok(())
    } else {
        Err(format!("{what} read back {read:?} for {text:?}"))
    }
}

/// The value of `k.v` in `document`, and that `after` is still a key of the top level, as
/// libyaml and yaml-rust2 read them.
fn read_both(document: &str) -> Result<(String, String), String> {
    let libyaml: serde_yaml::Value =
        serde_yaml::from_str(document).map_err(|e| format!("libyaml: {e} in {document:?}"))?;
    let rust2 = yaml_rust2::YamlLoader::load_from_str(document)
        .map_err(|e| format!("yaml-rust2: {e} in {document:?}"))?;
    let rust2 = rust2.first().ok_or("yaml-rust2: no document")?;
    if libyaml["after"].as_i64() != Some(1) || rust2["after"].as_i64() != Some(1) {
        return Err(format!("the structure changed: {document:?}"));
    }
    Ok((
        libyaml["k"]["v"]
            .as_str()
            .ok_or("libyaml: no k.v")?
            .to_owned(),
        rust2["k"]["v"]
            .as_str()
            .ok_or("yaml-rust2: no k.v")?
            .to_owned(),
    ))
}
