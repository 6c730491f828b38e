//! Plain-text tables for both command lines (`vantage`, `vantage-hub`).

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};

/// Renders `rows` under `headers`: no borders, columns separated by two
/// spaces, no trailing spaces. Control characters (values come from the
/// network) are replaced so a hostile value cannot move the cursor.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| clean(h)));
    for r in rows {
        t.add_row(r.iter().map(|c| clean(c)));
    }
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
        col.set_cell_alignment(CellAlignment::Left);
    }
    let mut out = t.trim_fmt();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_without_borders_or_trailing_space() {
        let t = super::render(
            &["node", "cc"],
            &[
                vec!["n-1".into(), "DE".into()],
                vec!["n-long\n".into(), "F".into()],
            ],
        );
        assert_eq!(t, "node     cc\nn-1      DE\nn-long?  F\n");
    }

    #[test]
    fn wide_characters_keep_columns() {
        let t = super::render(&["a", "b"], &[vec!["Zürich".into(), "x".into()]]);
        assert_eq!(t, "a       b\nZürich  x\n");
    }
}
