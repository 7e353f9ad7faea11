//! How much scrubbing secret values costs per captured line: run by
//! `bench/secrets/run.sh`. Lines like the buffs services print (JSON, about
//! 180 bytes), 1 in 1,000 holding a secret; 0, 3, 10 and 30 secrets of 24
//! characters (plus, for 3 and more, one PEM key of 26 lines). Prints the
//! median of 5 runs of 200,000 lines each.

use std::time::Instant;

use cove_runtime::secrets::{Redactor, Value};

fn main() {
    let lines: Vec<String> = (0..200_000)
        .map(|i| {
            format!(
                r#"{{"ts":"2026-12-03T14:15:20.{i:09}Z","level":"info","service":"server","msg":"request","method":"GET","path":"/buffs/{i}","status":200,"duration_ms":0.964}}"#
            )
        })
        .collect();
    println!("| secrets | patterns | ns per line | lines per second |");
    println!("|---|---|---|---|");
    for n in [0usize, 3, 10, 30] {
        let mut values: Vec<Value> = (0..n)
            .map(|k| Value::new(format!("s3cr3t-{k:04}-abcdefghijklmn").into_bytes()))
            .collect();
        if n >= 3 {
            let pem: String = std::iter::once("-----BEGIN PRIVATE KEY-----".to_string())
                .chain((0..24).map(|l| format!("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{l:032}")))
                .chain(std::iter::once("-----END PRIVATE KEY-----".to_string()))
                .collect::<Vec<_>>()
                .join("\n");
            values.push(Value::new(pem.into_bytes()));
        }
        let redactor = Redactor::new(&values);
        let patterns = format!("{redactor:?}");
        // Every 1,000th line holds the first secret.
        let input: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| match (i % 1000, values.first()) {
                (0, Some(v)) => format!("{l} {}", v.text().unwrap_or_default()),
                _ => l.clone(),
            })
            .collect();
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let mut kept = 0usize;
                for l in &input {
                    kept += redactor.scrub(l).len();
                }
                std::hint::black_box(kept);
                start.elapsed().as_nanos() as f64 / input.len() as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        let ns = runs[2];
        println!(
            "| {n}{} | {patterns} | {ns:.0} | {:.1} M |",
            if n >= 3 { " + 1 PEM" } else { "" },
            1e3 / ns
        );
    }
}
