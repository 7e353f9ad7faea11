//! The command line as Compose users type it, rewritten before clap reads
//! it: project options (`-f`, `-p`, `--env-file`, `--profile`,
//! `--project-directory`, `--env`) given after the subcommand are moved
//! before it (`cove up -f x.yaml` = `cove -f x.yaml up`), unless the
//! subcommand has an option of that name itself (`logs -f` is follow,
//! `run -p` is publish: the subcommand's own option wins). Nothing is
//! moved from after `--`, nor from a command's own arguments: for a
//! command that takes one (`run SERVICE COMMAND...`), everything after
//! SERVICE is the command, and a `--` is put after SERVICE so that clap
//! reads `cove run api ls --rm` as the command `ls --rm`.

use std::ffi::OsString;

use clap::{Arg, Command};

/// `args` (with the program's name first) with the project options found
/// after the subcommand moved before it; `cli` is the whole command tree.
pub fn rewrite(cli: &Command, args: Vec<OsString>) -> Vec<OsString> {
    let mut cli = cli.clone();
    cli.build();
    let Some(mut words) = args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        return args; // not UTF-8: left to clap as it is
    };
    // The subcommand: the first word that is not an option (or a value
    // of one) of the top level.
    let mut i = 1;
    let sub_at = loop {
        let Some(w) = words.get(i) else {
            return args;
        };
        if w == "--" {
            return args;
        }
        if let Some(skip) = option_width(&cli, &words[i..]) {
            i += skip;
            continue;
        }
        break i;
    };
    let Some(mut sub) = cli.find_subcommand(&words[sub_at]).cloned() else {
        return args;
    };
    let mut moved: Vec<String> = Vec::new();
    let mut i = sub_at + 1;
    while i < words.len() {
        let w = words[i].clone();
        if w == "--" {
            break;
        }
        if !w.starts_with('-') || w == "-" {
            // A nested subcommand (`secrets set`) goes on with its own options.
            if let Some(nested) = sub.find_subcommand(&w).cloned() {
                sub = nested;
                i += 1;
                continue;
            }
            if takes_command(&sub) {
                // SERVICE: what follows is the command, as it is.
                if words.get(i + 1).is_some_and(|n| n != "--") {
                    words.insert(i + 1, "--".into());
                }
                break;
            }
            i += 1;
            continue;
        }
        if let Some(skip) = option_width(&sub, &words[i..]) {
            i += skip; // the subcommand's own: it wins
            continue;
        }
        if let Some(skip) = option_width(&cli, &words[i..]) {
            let end = (i + skip).min(words.len());
            moved.extend(words.drain(i..end));
            continue;
        }
        i += 1; // unknown: clap says so
    }
    if moved.is_empty() && words.len() == args.len() {
        return args;
    }
    let tail = words.split_off(sub_at);
    words.extend(moved);
    words.extend(tail);
    words.into_iter().map(OsString::from).collect()
}

/// Whether `cmd` takes a command after its positionals (`run SERVICE
/// COMMAND...`).
fn takes_command(cmd: &Command) -> bool {
    cmd.get_arguments()
        .any(|a| a.is_positional() && a.is_trailing_var_arg_set())
}

/// When `words[0]` is an option of `cmd` (its own, not a global one it
/// inherits), how many words it takes (1, or 2 with a separate value).
fn option_width(cmd: &Command, words: &[String]) -> Option<usize> {
    let w = words.first()?;
    if let Some(long) = w.strip_prefix("--") {
        let (name, attached) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        let arg = cmd.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        })?;
        return Some(if takes_value(arg) && !attached { 2 } else { 1 });
    }
    let shorts = w.strip_prefix('-')?;
    // A cluster (`-dt 5`): flags, then at most one option with a value
    // (the rest of the word, or the next word).
    for (at, c) in shorts.char_indices() {
        let arg = cmd.get_arguments().find(|a| {
            a.get_short() == Some(c) || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
        })?;
        if takes_value(arg) {
            let rest = &shorts[at + c.len_utf8()..];
            return Some(if rest.is_empty() { 2 } else { 1 });
        }
    }
    Some(1)
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn words(line: &str) -> Vec<String> {
        let args = std::iter::once("cove")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect();
        rewrite(&crate::cli::Cli::command(), args)
            .into_iter()
            .skip(1)
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn project_options_after_the_subcommand_move_before_it() {
        assert_eq!(words("up -f x.yaml -d"), words("-f x.yaml up -d"));
        assert_eq!(words("up -f x.yaml -d").join(" "), "-f x.yaml up -d");
        assert_eq!(words("ps -p name").join(" "), "-p name ps");
        assert_eq!(
            words("config --env-file=e --project-directory d -q").join(" "),
            "--env-file=e --project-directory d config -q"
        );
        assert_eq!(words("down --env staging").join(" "), "--env staging down");
        assert_eq!(words("ps -pname").join(" "), "-pname ps");
    }

    #[test]
    fn the_subcommands_own_option_wins() {
        // `logs -f` follows; `up --profile` is up's own; `run -p` publishes.
        assert_eq!(words("logs -f api").join(" "), "logs -f api");
        assert_eq!(words("up --profile x").join(" "), "up --profile x");
        assert_eq!(
            words("run -p 8080:80 -f x.yaml api").join(" "),
            "-f x.yaml run -p 8080:80 api"
        );
        assert_eq!(words("run -e A=1 api").join(" "), "run -e A=1 api");
    }

    #[test]
    fn a_commands_arguments_are_its_own() {
        assert_eq!(
            words("run --rm api ls -f x -p").join(" "),
            "run --rm api -- ls -f x -p"
        );
        assert_eq!(words("run api -- ls").join(" "), "run api -- ls");
        assert_eq!(words("run api").join(" "), "run api");
        assert_eq!(words("up -- -f").join(" "), "up -- -f");
    }
}
