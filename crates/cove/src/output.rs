//! Terminal output conventions: data on stdout, diagnostics on stderr,
//! colour only on a terminal and never when `NO_COLOR` is set.

use std::io::IsTerminal;

use cove_spec::Style;

pub fn stderr_style() -> Style {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    if !no_color && std::io::stderr().is_terminal() {
        Style::colour()
    } else {
        Style::plain()
    }
}

/// Whether stdout gets colour.
pub fn stdout_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stdout().is_terminal()
}
