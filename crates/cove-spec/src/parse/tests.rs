//! The parser's leniencies and where it reports what it refuses.

use super::*;

fn get<'a>(n: &'a Node, path: &[&str]) -> Option<&'a Node> {
    path.iter().try_fold(n, |n, k| n.as_map()?.get(k))
}

/// The one document of `yaml`, or the diagnostics' messages.
fn one(yaml: &str) -> Result<Node, Vec<String>> {
    let mut diags = Diagnostics::default();
    let docs = parse(FileId(0), yaml, &mut diags);
    if diags.has_errors() || docs.len() != 1 {
        return Err(diags.items().iter().map(|d| format!("{d:?}")).collect());
    }
    Ok(docs.into_iter().next().unwrap())
}

/// `services.web.command`'s items and the span of the first.
fn command(yaml: &str) -> (Vec<String>, Span) {
    let doc = one(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    let cmd = get(&doc, &["services", "web", "command"]).unwrap();
    let Kind::Seq(items) = &cmd.kind else {
        panic!("not a sequence: {cmd:?}")
    };
    let texts = items
        .iter()
        .map(|n| match &n.kind {
            Kind::Scalar(s) => s.text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    (texts, items[0].span)
}

const WANT: [&str; 3] = ["nginx", "-g", "daemon off;"];

#[test]
fn a_flow_sequence_closed_at_its_keys_column_is_read_as_compose_reads_it() {
    let (items, first) = command(
        "services:\n  web:\n    image: nginx\n    command: [\n      \"nginx\", \"-g\", \"daemon off;\"\n    ]\n",
    );
    assert_eq!(items, WANT);
    assert_eq!((first.line, first.col), (5, 7));
}

#[test]
fn flow_items_at_or_left_of_the_keys_column_are_read_and_keep_their_place() {
    // Items at the key's column.
    let (items, first) = command(
        "services:\n  web:\n    command: [\n    \"nginx\", \"-g\", \"daemon off;\"\n    ]\n    image: nginx\n",
    );
    assert_eq!(items, WANT);
    assert_eq!((first.line, first.col), (4, 5), "the place as written");
    // A continuation line left of the key.
    let (items, _) =
        command("services:\n  web:\n    command: [\"nginx\",\n  \"-g\", \"daemon off;\"]\n");
    assert_eq!(items, WANT);
    // A flow mapping, in a block sequence item, with a comment.
    let doc = one(
        "services:\n  web:\n    ports:\n      - {target: 80, # the app\n      published: \"8080\"}\n",
    )
    .unwrap();
    let ports = get(&doc, &["services", "web", "ports"]);
    let Kind::Seq(items) = &ports.unwrap().kind else {
        panic!()
    };
    assert!(get(&items[0], &["published"]).is_some());
}

#[test]
fn other_indentation_errors_are_still_errors_at_their_place() {
    let e = one("services:\n  web:\n    image: nginx\n   command: x\n").unwrap_err();
    assert!(e.iter().any(|d| d.contains("line: 4")), "{e:?}");
    // A flow collection never closed.
    let e = one("services:\n  web:\n    command: [\n  \"a\",\n").unwrap_err();
    assert!(!e.is_empty());
}

#[test]
fn a_key_glued_to_its_value_is_reported_on_its_own_line() {
    let e = one("services:foo\n  web:\n    image: nginx\n").unwrap_err();
    assert!(e.iter().any(|d| d.contains("line: 1, col: 9")), "{e:?}");
    assert!(
        e.iter()
            .any(|d| d.contains("`services:` has no space after its colon")),
        "{e:?}"
    );
    // A URL is no glued key: the scanner's own words, at its place.
    let e = one("x:\n  - http://a\n    b: 1\n").unwrap_err();
    assert!(!e.iter().any(|d| d.contains("no space after")), "{e:?}");
}
