//! Custom variables: `--set key=value` and the lines a control channel takes.
//!
//! A line is `key=value` or a JSON object (`{"score": 3, "team": "red"}`). Values are typed
//! as JSON would read them, so numbers stay numbers: `score=12` is an integer, `t=1.5` a
//! float, `on=true` a boolean, `name="A B"` or `name=A B` a string.

/// Parse one `key=value` assignment.
pub fn parse_assignment(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not an assignment: use key=value, e.g. score=10"))?;
    let k = k.trim();
    if !valid_key(k) {
        return Err(format!(
            "`{k}` is not a variable name: use letters, digits and _ (not starting with a digit)"
        ));
    }
    Ok((k.to_string(), typed_value(v.trim())))
}

fn valid_key(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && k.len() <= 64
}

/// `12` → integer, `1.5` → float, `true` → bool, `"x"` → string, `[1,2]` → array,
/// anything else → the text itself.
pub fn typed_value(v: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(j) if !j.is_null() => j,
        _ => serde_json::Value::String(v.to_string()),
    }
}

/// Parse one control-channel line into assignments. Blank lines and `#` comments give none.
pub fn parse_line(line: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Vec::new());
    }
    if line.starts_with('{') {
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| format!("bad JSON: {e}"))?;
        return obj
            .into_iter()
            .map(|(k, v)| {
                if valid_key(&k) {
                    Ok((k, v))
                } else {
                    Err(format!("`{k}` is not a variable name"))
                }
            })
            .collect();
    }
    parse_assignment(line).map(|a| vec![a])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_assignments() {
        assert_eq!(
            parse_assignment("score=12").unwrap(),
            ("score".into(), json!(12))
        );
        assert_eq!(
            parse_assignment("t = 1.5").unwrap(),
            ("t".into(), json!(1.5))
        );
        assert_eq!(
            parse_assignment("on=true").unwrap(),
            ("on".into(), json!(true))
        );
        assert_eq!(
            parse_assignment("n=Home Team").unwrap(),
            ("n".into(), json!("Home Team"))
        );
        assert_eq!(
            parse_assignment("n=\"42\"").unwrap(),
            ("n".into(), json!("42"))
        );
        assert_eq!(parse_assignment("e=").unwrap(), ("e".into(), json!("")));
        assert!(parse_assignment("noequals").is_err());
        assert!(parse_assignment("9x=1").is_err());
    }

    #[test]
    fn lines() {
        assert!(parse_line("  ").unwrap().is_empty());
        assert!(parse_line("# note").unwrap().is_empty());
        let v = parse_line(r#"{"score": 3, "team": "red"}"#).unwrap();
        assert_eq!(v.len(), 2);
        assert!(parse_line("{bad").is_err());
        assert_eq!(parse_line("a=1").unwrap(), vec![("a".into(), json!(1))]);
    }
}
