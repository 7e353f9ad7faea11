//! The buff: a question and its answers. Validation of what clients send,
//! the MariaDB table, and the JSON shape `GET /buffs` answers with — the
//! brief's Go service (GORM's `Model` fields, then the buff's own).

use serde_json::{Value, json};
use sqlx::MySqlPool;

/// Largest request body `POST /buff` accepts.
pub const MAX_BODY: usize = 16 * 1024;
/// Longest question, in characters.
pub const MAX_QUESTION: usize = 1000;
/// Most answers, and the longest answer in characters.
pub const MAX_ANSWERS: usize = 20;
pub const MAX_ANSWER: usize = 200;

/// A buff to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBuff {
    pub question: String,
    pub answers: Vec<String>,
}

/// Checks a `POST /buff` body; the error says what is wrong, for a 400.
pub fn validate(body: &[u8]) -> Result<NewBuff, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("the body must be a JSON object: {\"question\": \"...\", \"answers\": [\"...\"]}")?;
    let question = match obj.get("question") {
        None => return Err("`question` is missing".into()),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err("`question` is empty".into());
        }
        Some(Value::String(s)) if s.chars().count() > MAX_QUESTION => {
            return Err(format!(
                "`question` is longer than {MAX_QUESTION} characters"
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`question` must be a string".into()),
    };
    let answers = match obj.get("answers") {
        None => return Err("`answers` is missing".into()),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err("`answers` is empty: give at least one answer".into());
        }
        Some(Value::Array(a)) if a.len() > MAX_ANSWERS => {
            return Err(format!("`answers` has more than {MAX_ANSWERS} answers"));
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if s.trim().is_empty() => Err(format!("`answers[{i}]` is empty")),
                Value::String(s) if s.chars().count() > MAX_ANSWER => Err(format!(
                    "`answers[{i}]` is longer than {MAX_ANSWER} characters"
                )),
                Value::String(s) => Ok(s.clone()),
                _ => Err(format!("`answers[{i}]` must be a string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("`answers` must be an array of strings".into()),
    };
    if let Some(k) = obj.keys().find(|k| *k != "question" && *k != "answers") {
        return Err(format!(
            "unknown field `{k}`: a buff has `question` and `answers`"
        ));
    }
    Ok(NewBuff { question, answers })
}

/// Creates the table if it is not there (both services call this; it is
/// idempotent).
pub async fn migrate(db: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS buffs (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            deleted_at DATETIME(6) NULL,
            question VARCHAR(1000) NOT NULL,
            answers TEXT NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Stores a buff; returns its id.
pub async fn insert(db: &MySqlPool, buff: &NewBuff) -> Result<u64, sqlx::Error> {
    let answers = serde_json::to_string(&buff.answers).unwrap_or_else(|_| "[]".into());
    let done = sqlx::query(
        "INSERT INTO buffs (created_at, updated_at, question, answers)
         VALUES (UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?, ?)",
    )
    .bind(&buff.question)
    .bind(answers)
    .execute(db)
    .await?;
    Ok(done.last_insert_id())
}

/// Every buff not deleted, oldest first, in the brief's JSON shape.
pub async fn list(db: &MySqlPool) -> Result<Value, sqlx::Error> {
    let rows: Vec<(u64, String, String, Option<String>, String, String)> = sqlx::query_as(
        "SELECT id,
                CAST(DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%s.%f') AS CHAR),
                CAST(DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') AS CHAR),
                CAST(DATE_FORMAT(deleted_at, '%Y-%m-%dT%H:%i:%s.%f') AS CHAR),
                question, answers
         FROM buffs WHERE deleted_at IS NULL ORDER BY id",
    )
    .fetch_all(db)
    .await?;
    Ok(Value::Array(
        rows.into_iter()
            .map(|(id, created, updated, deleted, question, answers)| {
                let answers: Value = serde_json::from_str(&answers).unwrap_or(json!([]));
                json!({
                    "ID": id,
                    "CreatedAt": go_time(&created),
                    "UpdatedAt": go_time(&updated),
                    "DeletedAt": match deleted {
                        Some(t) => json!({"Time": go_time(&t), "Valid": true}),
                        None => json!({"Time": "0001-01-01T00:00:00Z", "Valid": false}),
                    },
                    "question": question,
                    "answers": answers,
                })
            })
            .collect(),
    ))
}

/// `2024-05-01T10:00:00.120000` (UTC) → `2024-05-01T10:00:00.12Z`, as Go's
/// `time.Time` marshals (RFC 3339 with trailing zeros of the fraction cut).
pub fn go_time(t: &str) -> String {
    let t = match t.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => t.to_owned(),
    };
    format!("{t}Z")
}

/// The event `dashboard` publishes after storing a buff.
pub fn created_event(id: u64) -> Vec<u8> {
    json!({"type": "buff.created", "id": id})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_buffs() {
        assert_eq!(
            validate(br#"{"question": "who", "answers": ["me", "you"]}"#).unwrap(),
            NewBuff {
                question: "who".into(),
                answers: vec!["me".into(), "you".into()]
            }
        );
    }

    #[test]
    fn bad_buffs_say_what_is_wrong() {
        for (body, want) in [
            (&b"not json"[..], "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (br#"{"answers": ["a"]}"#, "`question` is missing"),
            (
                br#"{"question": " ", "answers": ["a"]}"#,
                "`question` is empty",
            ),
            (
                br#"{"question": 7, "answers": ["a"]}"#,
                "`question` must be a string",
            ),
            (br#"{"question": "q"}"#, "`answers` is missing"),
            (br#"{"question": "q", "answers": []}"#, "`answers` is empty"),
            (br#"{"question": "q", "answers": "a"}"#, "must be an array"),
            (
                br#"{"question": "q", "answers": ["a", 2]}"#,
                "`answers[1]` must be a string",
            ),
            (
                br#"{"question": "q", "answers": ["a", ""]}"#,
                "`answers[1]` is empty",
            ),
            (
                br#"{"question": "q", "answers": ["a"], "x": 1}"#,
                "unknown field `x`",
            ),
        ] {
            let err = validate(body).unwrap_err();
            assert!(
                err.contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(
            r#"{{"question": "{}", "answers": ["a"]}}"#,
            "q".repeat(MAX_QUESTION + 1)
        );
        assert!(
            validate(long.as_bytes())
                .unwrap_err()
                .contains("longer than")
        );
    }

    #[test]
    fn times_as_go_marshals_them() {
        assert_eq!(
            go_time("2024-05-01T10:00:00.120000"),
            "2024-05-01T10:00:00.12Z"
        );
        assert_eq!(
            go_time("2024-05-01T10:00:00.000000"),
            "2024-05-01T10:00:00Z"
        );
    }
}
