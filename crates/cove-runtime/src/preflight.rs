//! Checks of an app against the machine it is to run on, apart from the
//! plan (which is a pure function of the app and its
//! [`Placement`](crate::plan::Placement), so that a renderer for another
//! place can reuse it): the programs a recipe runs are installed, the
//! system user a database server runs as exists (as root), a container's
//! build context is a directory and its configs' files are files.
//!
//! Callers run [`check`] beside planning and report both
//! ([`checked`]): the errors, their text and the exit are the ones the
//! plan gave when it made these checks itself.

use std::path::{Path, PathBuf};

use cove_spec::App;

use crate::plan::{Plan, PlanError};
use crate::recipe::Recipe;

/// What the checks ask of a machine. [`Host`] is this one; tests give
/// others.
pub trait Machine {
    /// Whether `cove` runs as root (recipes then need more programs, and
    /// their servers' system users).
    fn is_root(&self) -> bool;
    /// Where program `name` is (on `PATH`, in the sbin directories, ...).
    fn program(&self, name: &str) -> Option<PathBuf>;
    /// Whether `path` is a file.
    fn is_file(&self, path: &Path) -> bool;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether the system user `name` exists.
    fn has_user(&self, name: &str) -> bool;
}

/// This machine.
pub struct Host;

impl Machine for Host {
    fn is_root(&self) -> bool {
        rustix::process::geteuid().is_root()
    }
    fn program(&self, name: &str) -> Option<PathBuf> {
        crate::recipe::find_in_path(name)
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn has_user(&self, name: &str) -> bool {
        crate::recipe::user_ids(name).is_some()
    }
}

/// Every problem of `app` on this machine.
pub fn check(app: &App) -> Vec<PlanError> {
    check_on(app, &Host)
}

/// Every problem of `app` on `machine`, services in the app's order.
pub fn check_on(app: &App, machine: &dyn Machine) -> Vec<PlanError> {
    let recipes = crate::plan::recipes(app);
    let containers = crate::plan::containers(app, &recipes);
    let mut errors = Vec::new();
    for (name, svc) in &app.services {
        let err = |message: String, hint: &str| PlanError {
            service: name.clone(),
            message,
            hint: hint.to_string(),
            field: Vec::new(),
            machine: false,
            written: false,
        };
        if containers.contains(&name.as_str()) {
            if let Some(b) = &svc.build
                && !machine.is_dir(Path::new(&b.context))
            {
                errors.push(
                    err(
                        format!("`build.context` {} is not a directory", b.context),
                        "cove builds from a local directory (a Git URL is not supported yet)",
                    )
                    .at(&["build"]),
                );
            }
            for c in &svc.configs {
                let file = app.configs.get(&c.source).and_then(|d| d.get("file"));
                if let Some(file) = file.and_then(|f| f.as_str())
                    && !machine.is_file(Path::new(file))
                {
                    errors.push(err(
                        format!("config `{}`: {file} is not a file", c.source),
                        "create it, or fix the `file:` of the top-level config (relative to the Compose file)",
                    ));
                }
            }
        }
        let Some(recipe) = recipes.get(name.as_str()).copied().flatten() else {
            continue;
        };
        if let Some((bin, package)) = missing(recipe, machine) {
            errors.push(PlanError {
                machine: true,
                ..err(
                    format!("runs natively with `{bin}`, which is not installed"),
                    &format!("install the Debian package `{package}` (apt-get install {package})"),
                )
                .at(&["image"])
            });
            continue;
        }
        if machine.is_root()
            && let Some(user) = recipe.service_user()
            && !machine.has_user(user)
        {
            let (_, package) = recipe.needs(true);
            errors.push(PlanError {
                machine: true,
                ..err(
                    format!(
                        "runs natively as the system user `{user}`, which does not exist (cove never runs a database server as root)"
                    ),
                    &format!(
                        "install the Debian package `{package}`, which makes it (apt-get install {package})"
                    ),
                )
                .at(&["image"])
            });
        }
    }
    errors
}

/// The first program `recipe` needs that `machine` lacks, and its package.
fn missing(recipe: Recipe, machine: &dyn Machine) -> Option<(&'static str, &'static str)> {
    let (bins, package) = recipe.needs(machine.is_root());
    bins.iter()
        .find(|b| match b.starts_with('/') {
            true => !machine.is_file(Path::new(b)),
            false => machine.program(b).is_none(),
        })
        .map(|b| (*b, package))
}

/// `planned` with the machine's `problems`: each service's problems
/// together (the machine's first, as they were found first when the plan
/// made these checks), services in the app's order, the project's last.
pub fn checked(
    app: &App,
    planned: Result<Plan, Vec<PlanError>>,
    problems: Vec<PlanError>,
) -> Result<Plan, Vec<PlanError>> {
    if problems.is_empty() {
        return planned;
    }
    let mut errors = problems;
    errors.extend(planned.err().unwrap_or_default());
    let position = |e: &PlanError| app.services.get_index_of(&e.service).unwrap_or(usize::MAX);
    errors.sort_by_key(position);
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine with `programs`, `files`, `dirs` and `users`.
    #[derive(Default)]
    struct Fake {
        root: bool,
        programs: Vec<&'static str>,
        files: Vec<PathBuf>,
        dirs: Vec<PathBuf>,
        users: Vec<&'static str>,
    }

    impl Machine for Fake {
        fn is_root(&self) -> bool {
            self.root
        }
        fn program(&self, name: &str) -> Option<PathBuf> {
            self.programs
                .contains(&name)
                .then(|| Path::new("/usr/bin").join(name))
        }
        fn is_file(&self, path: &Path) -> bool {
            self.files.iter().any(|f| f == path)
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.dirs.iter().any(|d| d == path)
        }
        fn has_user(&self, name: &str) -> bool {
            self.users.contains(&name)
        }
    }

    fn app(json: serde_json::Value) -> App {
        serde_json::from_value(json).unwrap()
    }

    fn messages(errors: &[PlanError]) -> Vec<String> {
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_recipe_needs_its_programs() {
        let app = app(serde_json::json!({"name": "a", "services": {"db": {"image": "redis:7"}}}));
        let none = check_on(&app, &Fake::default());
        assert_eq!(
            messages(&none),
            ["service `db`: runs natively with `redis-server`, which is not installed"]
        );
        assert!(none[0].machine && !none[0].written);
        assert_eq!(none[0].path(), ["services", "db", "image"]);
        assert_eq!(
            none[0].hint,
            "install the Debian package `redis-server` (apt-get install redis-server)"
        );
        let half = Fake {
            programs: vec!["redis-server"],
            ..Fake::default()
        };
        assert!(messages(&check_on(&app, &half))[0].contains("`redis-cli`"));
        let both = Fake {
            programs: vec!["redis-server", "redis-cli"],
            ..Fake::default()
        };
        assert!(check_on(&app, &both).is_empty());
    }

    #[test]
    fn as_root_a_database_needs_its_system_user() {
        let app =
            app(serde_json::json!({"name": "a", "services": {"db": {"image": "postgres:16"}}}));
        let programs = vec![
            "postgres",
            "initdb",
            "pg_isready",
            "unshare",
            "setpriv",
            "mount",
        ];
        let user = Fake {
            programs: programs.clone(),
            ..Fake::default()
        };
        assert!(check_on(&app, &user).is_empty(), "not root: no user needed");
        let root = Fake {
            root: true,
            programs: programs.clone(),
            ..Fake::default()
        };
        let errors = check_on(&app, &root);
        assert_eq!(
            messages(&errors),
            [
                "service `db`: runs natively as the system user `postgres`, which does not exist (cove never runs a database server as root)"
            ]
        );
        assert!(errors[0].machine);
        let with_user = Fake {
            root: true,
            programs,
            users: vec!["postgres"],
            ..Fake::default()
        };
        assert!(check_on(&app, &with_user).is_empty());
        let root_without_tools = Fake {
            root: true,
            programs: vec!["postgres", "initdb", "pg_isready"],
            users: vec!["postgres"],
            ..Fake::default()
        };
        assert!(messages(&check_on(&app, &root_without_tools))[0].contains("`unshare`"));
    }

    #[test]
    fn a_build_context_must_be_a_directory() {
        let app = app(serde_json::json!({"name": "a", "services": {
            "web": {"build": {"context": "/src/web"}}
        }}));
        let errors = check_on(&app, &Fake::default());
        assert_eq!(
            messages(&errors),
            ["service `web`: `build.context` /src/web is not a directory"]
        );
        assert_eq!(errors[0].path(), ["services", "web", "build"]);
        assert!(!errors[0].machine && !errors[0].written);
        let there = Fake {
            dirs: vec!["/src/web".into()],
            ..Fake::default()
        };
        assert!(check_on(&app, &there).is_empty());
    }

    #[test]
    fn a_config_file_must_be_a_file() {
        let app = app(serde_json::json!({"name": "a",
            "services": {"web": {"image": "nginx", "configs": [{"source": "site"}]}},
            "configs": {"site": {"file": "/src/site.conf"}}
        }));
        assert_eq!(
            messages(&check_on(&app, &Fake::default())),
            ["service `web`: config `site`: /src/site.conf is not a file"]
        );
        let there = Fake {
            files: vec!["/src/site.conf".into()],
            ..Fake::default()
        };
        assert!(check_on(&app, &there).is_empty());
    }

    #[test]
    fn native_services_need_nothing_of_the_machine() {
        let app = app(serde_json::json!({"name": "a", "services": {
            "api": {"x-cove": {"run": "./api"}, "build": {"context": "/nowhere"}}
        }}));
        assert!(check_on(&app, &Fake::default()).is_empty());
    }

    #[test]
    fn problems_join_the_plan_s_by_service() {
        let app = app(serde_json::json!({"name": "a", "services": {
            "a": {"image": "x"}, "b": {"image": "y"}
        }}));
        let e = |service: &str, message: &str| PlanError {
            service: service.into(),
            message: message.into(),
            hint: String::new(),
            field: Vec::new(),
            machine: false,
            written: false,
        };
        let planned = Err(vec![e("b", "plan b"), e("a", "plan a"), e("", "gateway")]);
        let all = checked(&app, planned, vec![e("a", "machine a")]).unwrap_err();
        assert_eq!(
            messages(&all),
            [
                "service `a`: machine a",
                "service `a`: plan a",
                "service `b`: plan b",
                "gateway"
            ]
        );
        let planned = Err(vec![e("b", "plan b")]);
        assert_eq!(checked(&app, planned.clone(), Vec::new()), planned);
    }
}
