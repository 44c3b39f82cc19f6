//! The revisioned API as text, for the `vigil` CLI: key ranges from arguments, a transaction's
//! compares and operations in etcdctl's syntax, and one readable line per record, event and
//! result (`docs/operations.md` §8 documents the syntax).
//!
//! Why in the library: parsing is where a newcomer's typo becomes either a clear error or a
//! wrong request, so it is unit-tested here, apart from the binary.
//!
//! The syntax (etcdctl's `txn`):
//! - a compare is `FIELD(KEY) OP OPERAND`: `FIELD` is `version` (`ver`), `create`
//!   (`create_revision`), `mod` (`mod_revision`) or `value` (`val`); `OP` is `=`, `!=`, `<`
//!   or `>`; the operand is a number, or for `value` any text. `mod(a) = 5`,
//!   `value("my key") = "x y"`;
//! - an operation is `put KEY VALUE`, `get KEY [RANGE_END] [--prefix]` or
//!   `del KEY [RANGE_END] [--prefix]` (`delete` too);
//! - words are separated by spaces; double quotes keep spaces and `\"` is a quote;
//! - a transaction file holds the compares, a blank line, the success operations, a blank
//!   line, the failure operations (etcdctl's interactive order); `#` starts a comment line.

use vigil_core::kv_types::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, Event, EventKind, KeyRange,
    KeyValue, PutRequest, RangeEnd, RangeRequest, RangeResult, TxnOperation, TxnOperationResult,
    TxnRequest,
};

/// Why a piece of text is not a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvTextError {
    /// A compare does not parse.
    #[error("compare {text:?}: {reason} (expected FIELD(KEY) OP OPERAND, e.g. 'mod(k) = 5', FIELD one of version, create, mod, value; OP one of = != < >)")]
    Compare {
        /// The compare as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// An operation does not parse.
    #[error("operation {text:?}: {reason} (expected 'put KEY VALUE', 'get KEY [RANGE_END] [--prefix]' or 'del KEY [RANGE_END] [--prefix]')")]
    Operation {
        /// The operation as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A key range's arguments contradict each other.
    #[error("key range: {0}")]
    Range(String),
    /// A transaction file has more than three blocks.
    #[error("transaction file: {0}")]
    File(String),
}

/// The range `[key, range_end)`, or the keys starting with `key` (`prefix`), or just `key`.
/// A `range_end` of `\0` means every key from `key` on (etcd's convention).
pub fn key_range(
    key: &str,
    range_end: Option<&str>,
    prefix: bool,
) -> Result<KeyRange, KvTextError> {
    match (range_end, prefix) {
        (Some(_), true) => Err(KvTextError::Range(
            "give a RANGE_END or --prefix, not both".into(),
        )),
        (None, true) => Ok(KeyRange::prefix(key.as_bytes())),
        (None, false) => Ok(KeyRange::single(key.as_bytes())),
        (Some("\\0" | "\0"), false) => Ok(KeyRange {
            key: key.as_bytes().to_vec(),
            end: RangeEnd::Unbounded,
        }),
        (Some(end), false) if end.as_bytes() <= key.as_bytes() => Err(KvTextError::Range(format!(
            "RANGE_END {end:?} is not after KEY {key:?}: the range would be empty"
        ))),
        (Some(end), false) => Ok(KeyRange {
            key: key.as_bytes().to_vec(),
            end: RangeEnd::Before(end.as_bytes().to_vec()),
        }),
    }
}

/// Splits `text` into words: spaces separate, double quotes keep spaces, `\"` is a quote.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' if quoted => match characters.next() {
                Some(escaped) => current.push(escaped),
                None => return Err("a backslash ends the text".into()),
            },
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            character if character.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            character => {
                current.push(character);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("a double quote is not closed".into());
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// `text` without one pair of surrounding double quotes, unescaped.
fn unquote(text: &str) -> Result<String, String> {
    match words(text)?.as_slice() {
        [word] => Ok(word.clone()),
        [] => Err("it is empty".into()),
        _ => Err(format!("{text:?} has spaces; quote it")),
    }
}

/// Parses one compare, `FIELD(KEY) OP OPERAND`.
pub fn parse_compare(text: &str) -> Result<Compare, KvTextError> {
    let error = |reason: String| KvTextError::Compare {
        text: text.to_string(),
        reason,
    };
    let (field, rest) = text
        .trim()
        .split_once('(')
        .ok_or_else(|| error("no '(' after the field".into()))?;
    let close = closing_parenthesis(rest).ok_or_else(|| error("no ')' after the key".into()))?;
    let key = unquote(&rest[..close]).map_err(|reason| error(format!("the key: {reason}")))?;
    let rest = rest[close + 1..].trim_start();
    let (result, operand) = [
        ("!=", CompareResult::NotEqual),
        ("=", CompareResult::Equal),
        ("<", CompareResult::Less),
        (">", CompareResult::Greater),
    ]
    .into_iter()
    .find_map(|(symbol, result)| Some((result, rest.strip_prefix(symbol)?)))
    .ok_or_else(|| error("no comparison (= != < >) after the key".into()))?;
    if operand.trim_start().starts_with(['=', '<', '>', '!']) {
        let written = rest.split_whitespace().next().unwrap_or(rest);
        return Err(error(format!(
            "unknown comparison {written:?}; use one of = != < >"
        )));
    }
    let operand = unquote(operand).map_err(|reason| error(format!("the operand: {reason}")))?;
    let number = || {
        operand
            .parse::<u64>()
            .map_err(|_| error(format!("{operand:?} is not a number")))
    };
    let target = match field.trim() {
        "version" | "ver" => CompareTarget::Version(number()?),
        "create" | "create_revision" => CompareTarget::CreateRevision(number()?),
        "mod" | "mod_revision" => CompareTarget::ModRevision(number()?),
        "value" | "val" => CompareTarget::Value(operand.into_bytes()),
        other => return Err(error(format!("unknown field {other:?}"))),
    };
    Ok(Compare {
        key: key.into_bytes(),
        target,
        result,
    })
}

/// Where the `)` closing a compare's key is in `text` (the text after its `(`), outside quotes.
fn closing_parenthesis(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ')' if !quoted => return Some(index),
            _ => {}
        }
    }
    None
}

/// Parses one operation of a transaction branch.
pub fn parse_operation(text: &str) -> Result<TxnOperation, KvTextError> {
    let error = |reason: String| KvTextError::Operation {
        text: text.to_string(),
        reason,
    };
    let words = words(text).map_err(error)?;
    let prefix = words.iter().any(|word| word == "--prefix");
    let positional: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|word| *word != "--prefix")
        .collect();
    if let Some(flag) = positional.iter().find(|word| word.starts_with("--")) {
        return Err(error(format!("unknown option {flag}")));
    }
    let range = |arguments: &[&str]| match arguments {
        [key] => key_range(key, None, prefix).map_err(|e| error(e.to_string())),
        [key, end] => key_range(key, Some(end), prefix).map_err(|e| error(e.to_string())),
        _ => Err(error("expected KEY [RANGE_END]".into())),
    };
    match positional.as_slice() {
        ["put", key, value] if !prefix => Ok(TxnOperation::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            prev_kv: false,
        })),
        ["put", ..] => Err(error("expected put KEY VALUE".into())),
        ["get", arguments @ ..] => Ok(TxnOperation::Range(RangeRequest::of(range(arguments)?))),
        ["del" | "delete", arguments @ ..] => Ok(TxnOperation::DeleteRange(DeleteRangeRequest {
            range: range(arguments)?,
            prev_kv: false,
        })),
        [other, ..] => Err(error(format!("unknown operation {other:?}"))),
        [] => Err(error("it is empty".into())),
    }
}

/// A transaction from compares and the operations of both branches, each in the syntax above.
pub fn parse_txn(
    compares: &[String],
    success: &[String],
    failure: &[String],
) -> Result<TxnRequest, KvTextError> {
    Ok(TxnRequest {
        compare: compares
            .iter()
            .map(|text| parse_compare(text))
            .collect::<Result<_, _>>()?,
        success: success
            .iter()
            .map(|text| parse_operation(text))
            .collect::<Result<_, _>>()?,
        failure: failure
            .iter()
            .map(|text| parse_operation(text))
            .collect::<Result<_, _>>()?,
    })
}

/// A transaction file: compares, a blank line, success operations, a blank line, failure
/// operations; lines starting with `#` are comments.
pub fn parse_txn_file(text: &str) -> Result<TxnRequest, KvTextError> {
    let mut blocks: Vec<Vec<String>> = vec![Vec::new()];
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if blocks.last().is_some_and(|block| !block.is_empty()) || blocks.len() == 1 {
                blocks.push(Vec::new());
            }
            continue;
        }
        blocks
            .last_mut()
            .expect("never empty")
            .push(line.to_string());
    }
    while blocks.len() > 1 && blocks.last().is_some_and(Vec::is_empty) {
        blocks.pop();
    }
    if blocks.len() > 3 {
        return Err(KvTextError::File(format!(
            "{} blocks; expected at most three (compares, success, failure) separated by blank lines",
            blocks.len()
        )));
    }
    blocks.resize(3, Vec::new());
    parse_txn(&blocks[0], &blocks[1], &blocks[2])
}

/// Bytes as text: UTF-8 as is, anything else lossily.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One record: `key = value (create_revision C, mod_revision M, version V)`; without a value
/// (a `keys_only` read) the key alone with its revisions.
pub fn describe_key_value(kv: &KeyValue) -> String {
    let revisions = format!(
        "(create_revision {}, mod_revision {}, version {})",
        kv.create_revision, kv.mod_revision, kv.version
    );
    match &kv.value {
        Some(value) => format!("{} = {} {revisions}", text(&kv.key), text(value)),
        None => format!("{} {revisions}", text(&kv.key)),
    }
}

/// A range's answer: one line per record, then the count, the revision and whether more keys
/// are in the range than were returned.
pub fn describe_range(result: &RangeResult) -> Vec<String> {
    let mut lines: Vec<String> = result.kvs.iter().map(describe_key_value).collect();
    let more = if result.more {
        format!(
            "; {} more not shown (raise --limit, or read from the last key shown)",
            result.count - result.kvs.len() as u64
        )
    } else {
        String::new()
    };
    lines.push(format!(
        "count {} at revision {}{more}",
        result.count, result.revision
    ));
    lines
}

/// One watch event: `PUT key = value (…)` or `DELETE key`, with the previous record if asked.
pub fn describe_event(event: &Event) -> String {
    let mut line = match event.kind {
        EventKind::Put => format!("PUT {}", describe_key_value(&event.kv)),
        EventKind::Delete => format!("DELETE {}", text(&event.kv.key)),
    };
    if let Some(previous) = &event.prev_kv {
        line.push_str(&format!(" (previous: {})", describe_key_value(previous)));
    }
    line
}

/// One line per operation result of a transaction's branch.
pub fn describe_txn_operation(result: &TxnOperationResult) -> Vec<String> {
    match result {
        TxnOperationResult::Range(range) => describe_range(range)
            .into_iter()
            .map(|line| format!("  get: {line}"))
            .collect(),
        TxnOperationResult::Put(put) => vec![format!("  put: revision {}", put.revision)],
        TxnOperationResult::DeleteRange(delete) => vec![format!(
            "  del: deleted {} at revision {}",
            delete.deleted, delete.revision
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse_in_etcdctl_syntax() {
        let compare = parse_compare("mod(k) = 5").unwrap();
        assert_eq!(compare.key, b"k");
        assert_eq!(compare.target, CompareTarget::ModRevision(5));
        assert_eq!(compare.result, CompareResult::Equal);
        let compare = parse_compare(r#"value("my key") != "a \"b\"""#).unwrap();
        assert_eq!(compare.key, b"my key");
        assert_eq!(compare.target, CompareTarget::Value(br#"a "b""#.to_vec()));
        assert_eq!(compare.result, CompareResult::NotEqual);
        let compare = parse_compare("ver(a)>0").unwrap();
        assert_eq!(compare.target, CompareTarget::Version(0));
        assert_eq!(compare.result, CompareResult::Greater);
        let compare = parse_compare("create(a) < \"3\"").unwrap();
        assert_eq!(compare.target, CompareTarget::CreateRevision(3));
    }

    #[test]
    fn malformed_compares_say_what_is_wrong() {
        for (text, reason) in [
            ("mod k = 5", "no '('"),
            ("mod(k = 5", "no ')'"),
            ("mod(k) == 5", "unknown comparison \"==\""),
            ("mod(k) <= 5", "unknown comparison \"<=\""),
            ("mod(k) 5", "no comparison"),
            ("mod(k) = five", "not a number"),
            ("size(k) = 5", "unknown field"),
            ("value(k) = a b", "has spaces"),
        ] {
            let error = parse_compare(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn operations_parse_and_refuse_clearly() {
        assert!(matches!(
            parse_operation("put k \"v w\"").unwrap(),
            TxnOperation::Put(put) if put.value == b"v w"
        ));
        assert!(matches!(
            parse_operation("get app/ --prefix").unwrap(),
            TxnOperation::Range(range) if range.range == KeyRange::prefix(b"app/")
        ));
        assert!(matches!(
            parse_operation("del a c").unwrap(),
            TxnOperation::DeleteRange(delete) if delete.range.end == RangeEnd::Before(b"c".to_vec())
        ));
        for (text, reason) in [
            ("put k", "expected put KEY VALUE"),
            ("get", "expected KEY"),
            ("get a b --prefix", "not both"),
            ("get b a", "not after KEY"),
            ("move a b", "unknown operation"),
            ("get a --limit", "unknown option"),
        ] {
            let error = parse_operation(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn a_file_holds_three_blocks() {
        let file = "# move a to b\nmod(a) = 4\n\nput b 1\ndel a\n\nget a\n";
        let txn = parse_txn_file(file).unwrap();
        assert_eq!(
            (txn.compare.len(), txn.success.len(), txn.failure.len()),
            (1, 2, 1)
        );
        let no_compares = parse_txn_file("\nput a 1\n").unwrap();
        assert_eq!(
            (no_compares.compare.len(), no_compares.success.len()),
            (0, 1)
        );
        let error = parse_txn_file("mod(a) = 1\n\nput a 1\n\nget a\n\nget b\n").unwrap_err();
        assert!(error.to_string().contains("at most three"), "{error}");
    }

    #[test]
    fn a_range_and_an_event_read_plainly() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
        };
        let result = RangeResult {
            kvs: vec![kv.clone()],
            more: true,
            count: 4,
            revision: 9,
        };
        assert_eq!(
            describe_range(&result),
            [
                "k = v (create_revision 2, mod_revision 5, version 3)",
                "count 4 at revision 9; 3 more not shown (raise --limit, or read from the last key shown)"
            ]
        );
        let event = Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                value: None,
                ..kv.clone()
            },
            prev_kv: Some(kv),
        };
        assert_eq!(
            describe_event(&event),
            "DELETE k (previous: k = v (create_revision 2, mod_revision 5, version 3))"
        );
    }
}
