//! Docker habits, natively: what a Compose file written for containers
//! takes for granted and a native replica does not have. What cove can fix
//! it fixes in the plan (service names after `-h`/`--host`:
//! `plan::rewrite_args`; `localhost` in health checks:
//! [`crate::health::loopback_to`]); what it cannot, it says here, once,
//! when `cove up` plans the app.

use cove_spec::App;

use crate::plan::{Plan, PlanError};
use crate::recipe::Recipe;

/// Every warning for `plan` (of `app`).
pub fn warnings(app: &App, plan: &Plan) -> Vec<PlanError> {
    let mut out = hosts_in_scripts(app, plan);
    out.extend(versions(app, plan, &host_version));
    out
}

/// A native command that names a service as a host inside one argument
/// (`sh -c 'redis-cli -h cache ping'`), where cove does not rewrite it:
/// natively, a service's name is no host name.
pub fn hosts_in_scripts(app: &App, plan: &Plan) -> Vec<PlanError> {
    let mut out = Vec::new();
    for svc in plan.services.iter().filter(|s| s.container.is_none()) {
        let mut named: Vec<(String, String)> = Vec::new();
        for arg in svc.argv.iter().filter(|a| a.contains(char::is_whitespace)) {
            let words: Vec<&str> = arg
                .split_whitespace()
                .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
                .collect();
            for (i, w) in words.iter().enumerate() {
                let (flag, name) = match w.strip_prefix("--host=") {
                    Some(n) => ("--host=", n),
                    None if matches!(*w, "-h" | "--host") && i + 1 < words.len() => {
                        (*w, words[i + 1])
                    }
                    None => continue,
                };
                if app.services.contains_key(name) && !named.iter().any(|(_, n)| n == name) {
                    let sep = if flag.ends_with('=') { "" } else { " " };
                    named.push((format!("{flag}{sep}{name}"), name.to_string()));
                }
            }
        }
        let field = match app.services.get(&svc.name).and_then(|s| s.x_cove.as_ref()) {
            Some(x) if x.run.is_some() => "`x-cove.run`",
            _ => "`command`",
        };
        for (words, name) in named {
            let var = format!("{}_HOST", name.to_ascii_uppercase().replace('-', "_"));
            out.push(PlanError {
                service: svc.name.clone(),
                message: format!(
                    "{field} names service `{name}` as a host (`{words}`) inside a script, where cove does not rewrite it: natively `{name}` is not a host name, so this will fail to connect"
                ),
                hint: format!(
                    "pass it through the environment — `environment: {{{var}: {name}}}` (cove rewrites it to {name}'s address) and `$${var}` in the script — or give `{words}` as separate arguments of a list, which cove rewrites"
                ),
                field: Vec::new(),
                machine: false,
                written: false,
            }
            .at(if field == "`x-cove.run`" { &["x-cove", "run"] } else { &["command"] }));
        }
    }
    out
}

/// The binary a recipe runs and how to ask its version, for the recipes
/// whose image tags are versions of the same program.
fn versioned(recipe: Recipe, image_name: &str) -> Option<&'static str> {
    match (recipe, image_name) {
        (Recipe::Postgres, "postgres" | "postgresql") => Some("postgres"),
        (Recipe::Redis, "redis") => Some("redis-server"),
        (Recipe::Mariadb, "mariadb") => Some("mariadbd"),
        _ => None,
    }
}

/// The first number in `text` (`postgres (PostgreSQL) 15.14` → 15,
/// `Redis server v=7.0.15` → 7, `16.2-alpine` → 16).
fn first_number(text: &str) -> Option<u32> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `BIN --version` of the host: its major version and path.
pub fn host_version(bin: &str) -> Option<(u32, String)> {
    let path = crate::recipe::find_in_path(bin)?;
    let out = std::process::Command::new(&path)
        .arg("--version")
        .env_clear()
        .envs(crate::environ::with(&[]))
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `mariadbd  Ver 10.11.6-MariaDB`, `postgres (PostgreSQL) 15.14`.
    let text = text.split_once("Ver ").map_or(&*text, |(_, v)| v);
    Some((first_number(text)?, path.display().to_string()))
}

/// An image whose tag names a major version (`postgres:16`) run natively
/// by the host's binary of another (PostgreSQL 15): a data directory of
/// one major version does not open with the other, and behaviour differs.
fn versions(
    app: &App,
    plan: &Plan,
    host: &dyn Fn(&str) -> Option<(u32, String)>,
) -> Vec<PlanError> {
    let mut out = Vec::new();
    for svc in plan.services.iter().filter(|s| s.container.is_none()) {
        let (Some(recipe), Some(image)) = (
            svc.recipe,
            app.services.get(&svc.name).and_then(|s| s.image.as_deref()),
        ) else {
            continue;
        };
        let reference = image.split('@').next().unwrap_or(image);
        let last = reference.rsplit('/').next().unwrap_or(reference);
        let Some((name, tag)) = last.split_once(':') else {
            continue;
        };
        let (Some(bin), Some(wanted)) = (versioned(recipe, name), first_number(tag)) else {
            continue;
        };
        if !tag.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let Some((have, path)) = host(bin) else {
            continue;
        };
        if have != wanted {
            out.push(PlanError {
                service: svc.name.clone(),
                message: format!(
                    "`image: {image}` asks for version {wanted}, but natively it runs this machine's {bin} {have} ({path}): a data directory made by one major version does not open with the other"
                ),
                hint: format!(
                    "install version {wanted} on this machine, write `image: {name}:{have}` to say what runs, or run it as a container (`x-cove: {{driver: docker}}`)"
                ),
                field: Vec::new(),
                machine: true,
                written: false,
            }
            .at(&["image"]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_the_first_number() {
        assert_eq!(
            first_number("postgres (PostgreSQL) 15.14 (Debian)"),
            Some(15)
        );
        assert_eq!(first_number("Redis server v=7.0.15 sha=0"), Some(7));
        assert_eq!(first_number("16.2-alpine"), Some(16));
        assert_eq!(first_number("alpine"), None);
    }
}
