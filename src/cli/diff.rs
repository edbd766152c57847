//! Line diffs in the unified format, for `steward apply --dry-run`.

/// Lines of context kept around each change, as `diff -u` does.
pub(crate) const CONTEXT_LINES: usize = 3;

/// The largest alignment table, in cells (changed old lines × changed new lines). Above it,
/// the changed lines are shown as removed and added in full, so a huge object cannot make the
/// diff quadratic in time and memory.
const MAX_TABLE_CELLS: usize = 4_000_000;

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Returns the differences from `old` to `new` as unified-diff hunks (`@@ -l,n +l,n @@`
/// headers, then lines starting with ` `, `-` or `+`), with `context` lines around each
/// change. Returns an empty string when the texts have the same lines.
pub(crate) fn unified(old: &str, new: &str, context: usize) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let edits = edit_script(&old_lines, &new_lines);
    if edits.iter().all(|edit| matches!(edit, Edit::Same(_))) {
        return String::new();
    }

    let mut out = String::new();
    for (start, end) in hunk_ranges(&edits, context) {
        // Line numbers are 1-based; a hunk with no old (or new) lines names the line before.
        let old_before = edits[..start]
            .iter()
            .filter(|e| !matches!(e, Edit::Added(_)))
            .count();
        let new_before = edits[..start]
            .iter()
            .filter(|e| !matches!(e, Edit::Removed(_)))
            .count();
        let hunk = &edits[start..end];
        let old_count = hunk.iter().filter(|e| !matches!(e, Edit::Added(_))).count();
        let new_count = hunk
            .iter()
            .filter(|e| !matches!(e, Edit::Removed(_)))
            .count();
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(old_before, old_count),
            range(new_before, new_count)
        ));
        for edit in hunk {
            let (mark, line) = match edit {
                Edit::Same(line) => (' ', line),
                Edit::Removed(line) => ('-', line),
                Edit::Added(line) => ('+', line),
            };
            out.push(mark);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Formats a hunk range: `start,count`, with `start` the line before an empty range.
fn range(before: usize, count: usize) -> String {
    if count == 0 {
        format!("{before},0")
    } else {
        format!("{},{count}", before + 1)
    }
}

/// Returns the `[start, end)` ranges of `edits` to print: each change with `context`
/// unchanged lines on both sides, ranges that touch or overlap merged.
fn hunk_ranges(edits: &[Edit<'_>], context: usize) -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, edit) in edits.iter().enumerate() {
        if matches!(edit, Edit::Same(_)) {
            continue;
        }
        let start = i.saturating_sub(context);
        let end = (i + 1 + context).min(edits.len());
        match ranges.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => ranges.push((start, end)),
        }
    }
    ranges
}

/// Builds an edit script: the common prefix and suffix, and between them a longest
/// common subsequence of lines (or, above [`MAX_TABLE_CELLS`], no alignment at all).
fn edit_script<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Edit<'a>> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old_middle = &old[prefix..old.len() - suffix];
    let new_middle = &new[prefix..new.len() - suffix];

    let mut edits: Vec<Edit<'a>> = old[..prefix].iter().map(|line| Edit::Same(line)).collect();
    if old_middle.len().saturating_mul(new_middle.len()) > MAX_TABLE_CELLS {
        edits.extend(old_middle.iter().map(|line| Edit::Removed(line)));
        edits.extend(new_middle.iter().map(|line| Edit::Added(line)));
    } else {
        edits.extend(align(old_middle, new_middle));
    }
    edits.extend(
        old[old.len() - suffix..]
            .iter()
            .map(|line| Edit::Same(line)),
    );
    edits
}

/// Aligns two line lists by a longest common subsequence (dynamic programming, O(n × m)).
/// Removals come before additions where both are possible, as `diff -u` prints them.
fn align<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Edit<'a>> {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: length of a longest common subsequence of old[i..] and new[j..].
    let width = m + 1;
    let mut lcs = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * width + j] = if old[i] == new[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }

    let mut edits = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            edits.push(Edit::Same(old[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
            edits.push(Edit::Removed(old[i]));
            i += 1;
        } else {
            edits.push(Edit::Added(new[j]));
            j += 1;
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_lines_give_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", 3), "");
        assert_eq!(unified("", "", 3), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified(old, new, 3),
            "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn hunks_split_and_merge() {
        let lines = |names: &[(u32, &str)]| -> String {
            (1..=20)
                .map(|i| match names.iter().find(|(n, _)| *n == i) {
                    Some((_, name)) => format!("{name}\n"),
                    None => format!("{i}\n"),
                })
                .collect()
        };
        let old = lines(&[]);
        let new = lines(&[(2, "two"), (19, "nineteen")]);
        let diff = unified(&old, &new, 1);
        assert_eq!(
            diff,
            "@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n@@ -18,3 +18,3 @@\n 18\n-19\n+nineteen\n 20\n"
        );

        // Changes three lines apart share one hunk when the context is 1 or more.
        let close = lines(&[(5, "five"), (8, "eight")]);
        assert_eq!(unified(&old, &close, 1).matches("@@ -").count(), 1);
    }

    #[test]
    fn insertion_and_deletion_ranges() {
        assert_eq!(unified("a\nb\n", "a\nx\nb\n", 0), "@@ -1,0 +2,1 @@\n+x\n");
        assert_eq!(unified("a\nx\nb\n", "a\nb\n", 0), "@@ -2,1 +1,0 @@\n-x\n");
        assert_eq!(unified("", "new\n", 3), "@@ -0,0 +1,1 @@\n+new\n");
    }

    #[test]
    fn yaml_changes_in_two_places() {
        let old = "spec:\n  version: a\n  workers:\n    min: 2\n    max: 8\n";
        let new = "spec:\n  version: b\n  workers:\n    min: 2\n    max: 10\n";
        assert_eq!(
            unified(old, new, 0),
            "@@ -2,1 +2,1 @@\n-  version: a\n+  version: b\n@@ -5,1 +5,1 @@\n-    max: 8\n+    max: 10\n"
        );
    }

    #[test]
    fn huge_middle_is_replaced_without_alignment() {
        let old: String = (0..3000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("new {i}\n")).collect();
        let diff = unified(&old, &new, 0);
        assert!(diff.starts_with("@@ -1,3000 +1,3000 @@\n-old 0\n"));
        assert_eq!(diff.lines().filter(|l| l.starts_with('-')).count(), 3000);
        assert_eq!(diff.lines().filter(|l| l.starts_with('+')).count(), 3000);
    }
}
