//! `.slugignore`: paths left out of a build's slug, written as in Heroku (gitignore's syntax without
//! negation). A pattern without a `/` matches a file or directory name at any depth (`*.psd`); one
//! with a `/` is anchored at the app root (`/test`, `docs/*.pdf`); `**` spans directories; a
//! trailing `/` matches directories only. Matching is on paths relative to the app root, so no
//! pattern can reach outside it. (VR globbed each line from the app root only; every pattern it
//! honoured means the same here.)

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Path components; `**` stands for any number of them.
    parts: Vec<String>,
    /// Matched against the whole path (else against each name).
    anchored: bool,
    /// Matches directories only.
    dir_only: bool,
}

/// The parsed patterns of a `.slugignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlugIgnore {
    patterns: Vec<Pattern>,
    /// Lines vr did not use, with why (for a warning).
    pub skipped: Vec<String>,
}

impl SlugIgnore {
    /// Parses the file's text; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> SlugIgnore {
        let mut out = SlugIgnore::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('!') {
                out.skipped.push(format!("'{line}': negation is not supported in .slugignore"));
                continue;
            }
            let dir_only = line.ends_with('/');
            let body = line.trim_end_matches('/');
            let anchored = body.contains('/');
            let parts: Vec<String> =
                body.split('/').filter(|p| !p.is_empty() && *p != ".").map(str::to_string).collect();
            if parts.is_empty() || parts.iter().any(|p| p == "..") {
                out.skipped.push(format!("'{line}': it names no path inside the app"));
                continue;
            }
            out.patterns.push(Pattern { parts, anchored, dir_only });
        }
        out
    }

    /// Whether the path (relative to the app root, `/`-separated) is left out. A directory that is
    /// left out takes everything under it along; callers do not descend into it.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let Some(name) = parts.last() else { return false };
        self.patterns.iter().filter(|p| is_dir || !p.dir_only).any(|p| {
            if p.anchored {
                match_parts(&p.parts, &parts)
            } else {
                p.parts.len() == 1 && wildmatch(&p.parts[0], name)
            }
        })
    }
}

/// Whether the pattern's parts match the path's: a table of which suffixes of the parts match
/// which suffixes of the patterns, from the last pattern back, so a line of many `**` costs
/// patterns × parts steps instead of trying every split (a tenant writes the file).
fn match_parts(pats: &[String], parts: &[&str]) -> bool {
    let n = parts.len();
    // next[j]: the patterns after this one match parts[j..].
    let mut next: Vec<bool> = (0..=n).map(|j| j == n).collect();
    for pat in pats.iter().rev() {
        let mut here = vec![false; n + 1];
        for j in (0..=n).rev() {
            here[j] = if pat == "**" {
                next[j] || (j < n && here[j + 1])
            } else {
                j < n && next[j + 1] && wildmatch(pat, parts[j])
            };
        }
        next = here;
    }
    next[0]
}

/// fnmatch(3) on one name: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]` and `\` escapes.
///
/// Every token but `*` matches one character, so one pass that returns to the last `*` on a
/// mismatch finds a match if there is one, in pattern × name steps (trying every split at every
/// `*` took exponential time: a tenant's `*a*a*a…b` against a long name stalled the packager).
pub fn wildmatch(pattern: &str, name: &str) -> bool {
    let tokens = tokens(&pattern.chars().collect::<Vec<_>>());
    let s: Vec<char> = name.chars().collect();
    let (mut t, mut i) = (0, 0);
    // After the last `*` seen: the token that follows it and where in the name it took over.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t + 1, i));
                t += 1;
            }
            Some(token) if token.matches(s[i]) => {
                t += 1;
                i += 1;
            }
            _ => match star {
                // Let that `*` take one more character and try the rest again.
                Some((after, from)) => {
                    star = Some((after, from + 1));
                    t = after;
                    i = from + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| matches!(token, Token::Star))
}

/// One element of a pattern.
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: any one character.
    Any,
    /// `[...]`: one character of the class.
    Class(Box<dyn Fn(char) -> bool>),
    /// One literal character (also an escaped one, and a `[` without its `]`).
    Literal(char),
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Class(ok) => ok(c),
            Token::Literal(l) => *l == c,
        }
    }
}

fn tokens(p: &[char]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let (token, used) = match p[i] {
            '*' => (Token::Star, 1),
            '?' => (Token::Any, 1),
            '[' => match class(&p[i + 1..]) {
                Some((ok, used)) => (Token::Class(ok), 1 + used),
                None => (Token::Literal('['), 1),
            },
            '\\' if i + 1 < p.len() => (Token::Literal(p[i + 1]), 2),
            c => (Token::Literal(c), 1),
        };
        out.push(token);
        i += used;
    }
    out
}

/// A bracket class after its `[`: a predicate and how many pattern characters it used (up to and
/// including `]`), or `None` when there is no closing `]` (then `[` is literal).
#[allow(clippy::type_complexity)]
fn class(p: &[char]) -> Option<(Box<dyn Fn(char) -> bool>, usize)> {
    let negated = matches!(p.first(), Some('!') | Some('^'));
    let start = usize::from(negated);
    // A `]` right after the opening (or the negation) is a member, not the end.
    let end = p.iter().skip(start + 1).position(|c| *c == ']')? + start + 1;
    let members: Vec<char> = p[start..end].to_vec();
    let test = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == '-' {
                hit |= members[i] <= c && c <= members[i + 2];
                i += 3;
            } else {
                hit |= members[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(test), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_slashes_anchor() {
        let ignore = SlugIgnore::parse("# comment\n\n*.psd\n/test\ndocs/*.pdf\nlogs/\n");
        assert!(ignore.is_ignored("art.psd", false));
        assert!(ignore.is_ignored("a/b/art.psd", false));
        assert!(ignore.is_ignored("test", true));
        assert!(!ignore.is_ignored("src/test", true), "a leading / anchors at the root");
        assert!(ignore.is_ignored("docs/manual.pdf", false));
        assert!(!ignore.is_ignored("other/docs/manual.pdf", false));
        assert!(ignore.is_ignored("logs", true));
        assert!(!ignore.is_ignored("logs", false), "a trailing / is for directories only");
        assert!(!ignore.is_ignored("app.py", false));
    }

    #[test]
    fn double_star_spans_directories() {
        let ignore = SlugIgnore::parse("spec/**/*.rb\n**/fixtures\n");
        assert!(ignore.is_ignored("spec/a.rb", false));
        assert!(ignore.is_ignored("spec/x/y/a.rb", false));
        assert!(ignore.is_ignored("deep/down/fixtures", true));
        assert!(ignore.is_ignored("fixtures", true));
    }

    #[test]
    fn fnmatch_classes_and_escapes() {
        assert!(wildmatch("file?.[ch]", "file1.c"));
        assert!(!wildmatch("file?.[ch]", "file1.o"));
        assert!(wildmatch("[!a-c]*", "dog"));
        assert!(!wildmatch("[!a-c]*", "cat"));
        assert!(wildmatch("\\*star", "*star"));
        assert!(!wildmatch("\\*star", "xstar"));
        assert!(wildmatch("[]x]", "]"));
        assert!(wildmatch("a[", "a["), "an unclosed [ is literal");
    }

    #[test]
    fn many_stars_take_linear_time() {
        // Found by fuzzing (fuzz/corpus/slugignore): each `*` tried every split, so these took
        // exponential time; a tenant writes both the file and the names.
        let stars = format!("{}b", "*a".repeat(30));
        assert!(!wildmatch(&stars, &"a".repeat(200)));
        assert!(wildmatch(&stars, &format!("{}b", "a".repeat(200))));
        let deep = format!("{}x", "**/".repeat(40));
        let ignore = SlugIgnore::parse(&format!("{deep}\n"));
        let path = format!("{}y", "d/".repeat(200));
        assert!(!ignore.is_ignored(&path, false));
        assert!(ignore.is_ignored(&format!("{}x", "d/".repeat(200)), false));
        assert!(wildmatch("*.tar.*", "a.tar.gz") && !wildmatch("*.tar.*", "a.tar"));
        assert!(wildmatch("a*", "a") && wildmatch("**", "") && !wildmatch("?", ""));
    }

    #[test]
    fn escapes_and_negations_are_refused_with_a_reason() {
        let ignore = SlugIgnore::parse("../outside\n!keep\n/\n");
        assert_eq!(ignore.patterns.len(), 0);
        assert_eq!(ignore.skipped.len(), 3, "{:?}", ignore.skipped);
    }
}
