//! Every relative link in the workspace's Markdown resolves: `[text](path)`,
//! `![alt](path)`, `[text](path#anchor)`, `[text](#anchor)` and `[label]: path`
//! point at a file or folder that exists and, where an anchor is given to a
//! Markdown file, at one of its headings (GitHub's slugs). Links with a scheme
//! (`https:`, `mailto:` …) are not followed. Fenced code blocks and inline code
//! are skipped, so an example of link syntax is not taken for a link.
//!
//! Only the standard library: this walks the tree itself, from the workspace root,
//! skipping `target/`, `node_modules/` and `.git/`.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Folders never walked: build output, npm packages and git's own.
const SKIPPED_DIRS: [&str; 3] = ["target", "node_modules", ".git"];

#[test]
fn every_relative_markdown_link_resolves() {
    let root = workspace_root();
    let files = markdown_files(&root);
    assert!(
        files.iter().any(|file| file.ends_with("README.md")),
        "no README.md found under {}: is the walk starting in the right place?",
        root.display()
    );
    let broken: Vec<String> = files
        .iter()
        .flat_map(|file| broken_links(&root, file))
        .collect();
    assert!(
        broken.is_empty(),
        "{} broken relative link(s) in the Markdown files (file:line -> target):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(slug("How it fits together"), "how-it-fits-together");
    assert_eq!(
        slug("The `Task` model — and (why)"),
        "the-task-model--and-why"
    );
    assert_eq!(
        slug("Soak: 10 minutes, 2026-11-26"),
        "soak-10-minutes-2026-11-26"
    );
    assert_eq!(slug("[Bad input](api.md#bad-input)"), "bad-input");
}

#[test]
fn links_are_found_outside_code_only() {
    let text = "see [a](a.md) and ![b](img/b.png \"title\")\n`[c](c.md)`\n```\n[d](d.md)\n```\n[e]: e.md\n";
    let found: Vec<(usize, String)> = links(text);
    let targets: Vec<&str> = found.iter().map(|(_, target)| target.as_str()).collect();
    assert_eq!(targets, ["a.md", "img/b.png", "e.md"]);
    assert_eq!(found[2].0, 6, "line numbers count from 1");
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Every `*.md` file under `dir`, outside the skipped folders, in a stable order.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name) {
                found.extend(markdown_files(&path));
            }
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
    found
}

/// The broken links of one file, each as `file:line -> target (why)`.
fn broken_links(root: &Path, file: &Path) -> Vec<String> {
    let text =
        fs::read_to_string(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    links(&text)
        .into_iter()
        .filter_map(|(line, target)| {
            check(root, file, &text, &target)
                .map(|why| format!("{shown}:{line} -> {target} ({why})"))
        })
        .collect()
}

/// Why `target`, linked from `file` (whose text is `text`), does not resolve; `None` when it does.
fn check(root: &Path, file: &Path, text: &str, target: &str) -> Option<String> {
    if has_scheme(target) {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        let decoded = percent_decode(path);
        let base = if decoded.starts_with('/') {
            root
        } else {
            file.parent()?
        };
        normalise(&base.join(decoded.trim_start_matches('/')))
    };
    if !resolved.exists() {
        return Some("no such file or folder".to_owned());
    }
    let anchor = anchor.filter(|a| !a.is_empty())?;
    if resolved.extension().is_none_or(|ext| ext != "md") {
        return None;
    }
    let target_text = if resolved == file {
        text.to_owned()
    } else {
        fs::read_to_string(&resolved).ok()?
    };
    let decoded = percent_decode(anchor).to_lowercase();
    (!anchors(&target_text).contains(&decoded))
        .then(|| format!("no heading with the anchor #{decoded}"))
}

/// `https:`, `mailto:` and the like: a scheme, not a path.
fn has_scheme(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

/// `a/./b/../c` as `a/c`, so a link that climbs out of its folder and back is judged by where it lands.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `%20` and the like, as GitHub reads them in a link; anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every link target in `text` with its line number (from 1), outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose = without_inline_code(line);
        let number = index + 1;
        found.extend(inline_targets(&prose).into_iter().map(|t| (number, t)));
        if let Some(target) = reference_target(&prose) {
            found.push((number, target));
        }
    }
    found
}

/// The line with every `code span` removed.
fn without_inline_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of `[text](target)` and `![alt](target "title")` on one line.
fn inline_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let mut depth = 0usize;
        let end = rest.char_indices().find_map(|(i, c)| match c {
            '(' => {
                depth += 1;
                None
            }
            ')' if depth == 0 => Some(i),
            ')' => {
                depth -= 1;
                None
            }
            _ => None,
        });
        let Some(end) = end else { break };
        let inside = rest[..end].trim();
        let target = inside.split_whitespace().next().unwrap_or("");
        let target = target.trim_start_matches('<').trim_end_matches('>');
        if !target.is_empty() {
            targets.push(target.to_owned());
        }
        rest = &rest[end..];
    }
    targets
}

/// The target of a reference definition, `[label]: target`.
fn reference_target(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (label, after) = rest.split_once("]:")?;
    if label.is_empty() || label.contains(']') {
        return None;
    }
    after.split_whitespace().next().map(str::to_owned)
}

/// The anchors GitHub gives the headings of `text`: slugs, the repeated ones numbered `-1`, `-2` …
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let Some(heading) = heading_text(line).filter(|_| !fenced) else {
            continue;
        };
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
    }
    seen
}

/// The text of an ATX heading (`## Title`), or `None` for any other line.
fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes) && (rest.is_empty() || rest.starts_with(' '))).then(|| rest.trim())
}

/// GitHub's slug of a heading: link targets dropped, lower case, letters, digits, `-` and `_`
/// kept, each space a `-`, everything else dropped.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(start) = rest.find("](") {
        text.push_str(&rest[..start]);
        rest = rest[start..].split_once(')').map_or("", |(_, after)| after);
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
