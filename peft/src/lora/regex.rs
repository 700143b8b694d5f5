//! The small regular-expression language PEFT users write in `target_modules`,
//! `exclude_modules`, `rank_pattern` and `alpha_pattern` (Python `re`): literals, `.`,
//! classes `[a-z0-9_]` and `[^.]`, `\d \w \s \D \W \S` and escaped metacharacters, groups
//! `(..)` and `(?:..)`, alternation `|`, the quantifiers `* + ? {n} {n,} {n,m}` (a trailing
//! `?` for laziness is accepted; a full match does not depend on it) and `^ $` at the ends.
//! Matching is backtracking, which is plenty for module names of a few dozen characters.

use std::fmt;

#[derive(Clone, Debug)]
enum Node {
    Char(char),
    Any,
    Class { negated: bool, items: Vec<(char, char)> },
    Group(Vec<Vec<Node>>),
    Repeat { node: Box<Node>, min: usize, max: Option<usize> },
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    source: String,
    alts: Vec<Vec<Node>>,
}

/// A pattern that does not parse: the pattern and the character offset.
#[derive(Clone, Debug, PartialEq)]
pub struct RegexError {
    pub pattern: String,
    pub at: usize,
    pub msg: String,
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "regex `{}` at character {}: {}", self.pattern, self.at, self.msg)
    }
}

impl std::error::Error for RegexError {}

struct Parser<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, msg: impl Into<String>) -> RegexError {
        RegexError { pattern: self.src.to_string(), at: self.pos, msg: msg.into() }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Vec<Vec<Node>>, RegexError> {
        let mut alts = vec![self.sequence()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, RegexError> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.pos += 1;
            let atom = match c {
                '.' => Node::Any,
                // Anchors at the ends add nothing to a full match.
                '^' if seq.is_empty() && self.pos == 1 => continue,
                '$' if self.pos == self.chars.len() => continue,
                '^' | '$' => return Err(self.err("anchors are only supported at the ends")),
                '(' => {
                    if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                        self.pos += 2;
                    } else if self.peek() == Some('?') {
                        return Err(self.err("only the (?:..) group extension is supported"));
                    }
                    let alts = self.alternation()?;
                    if self.peek() != Some(')') {
                        return Err(self.err("missing `)`"));
                    }
                    self.pos += 1;
                    Node::Group(alts)
                }
                '[' => self.class()?,
                '\\' => self.escape()?,
                '*' | '+' | '?' | '{' => return Err(self.err(format!("`{c}` follows nothing"))),
                c => Node::Char(c),
            };
            seq.push(self.quantified(atom)?);
        }
        Ok(seq)
    }

    fn escape(&mut self) -> Result<Node, RegexError> {
        let c = self.peek().ok_or_else(|| self.err("pattern ends in `\\`"))?;
        self.pos += 1;
        let class = |negated, items: &[(char, char)]| Node::Class { negated, items: items.to_vec() };
        const D: &[(char, char)] = &[('0', '9')];
        const W: &[(char, char)] = &[('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')];
        const S: &[(char, char)] = &[(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')];
        Ok(match c {
            'd' => class(false, D),
            'D' => class(true, D),
            'w' => class(false, W),
            'W' => class(true, W),
            's' => class(false, S),
            'S' => class(true, S),
            c if c.is_ascii_alphanumeric() => return Err(self.err(format!("escape `\\{c}` is not supported"))),
            c => Node::Char(c),
        })
    }

    fn class(&mut self) -> Result<Node, RegexError> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or_else(|| self.err("missing `]`"))?;
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                match self.escape()? {
                    Node::Char(e) => e,
                    Node::Class { negated: false, items: more } => {
                        items.extend(more);
                        continue;
                    }
                    _ => return Err(self.err("negated escapes inside a class are not supported")),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                let hi = self.chars[self.pos + 1];
                self.pos += 2;
                if hi < lo {
                    return Err(self.err(format!("range {lo}-{hi} is reversed")));
                }
                items.push((lo, hi));
            } else {
                items.push((lo, lo));
            }
        }
        Ok(Node::Class { negated, items })
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect::<String>().parse().ok()
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, RegexError> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number().ok_or_else(|| self.err("`{` needs a count"))?;
                let max = if self.peek() == Some(',') {
                    self.pos += 1;
                    self.number()
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return Err(self.err("missing `}`"));
                }
                if max.is_some_and(|m| m < min) {
                    return Err(self.err(format!("repeat {{{min},{}}} is reversed", max.unwrap())));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '{')) {
            return Err(self.err("multiple repeat"));
        }
        Ok(Node::Repeat { node: Box::new(atom), min, max })
    }
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut p = Parser { src: pattern, chars: pattern.chars().collect(), pos: 0 };
        let alts = p.alternation()?;
        if p.pos != p.chars.len() {
            return Err(p.err("unbalanced `)`"));
        }
        Ok(Regex { source: pattern.to_string(), alts })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches (Python's `re.fullmatch`).
    pub fn full_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        alts(&self.alts, &chars, 0, &mut |end| end == chars.len())
    }
}

fn alts(alts: &[Vec<Node>], s: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    alts.iter().any(|seq| sequence(seq, s, pos, k))
}

/// Match `seq` at `pos`, then call the continuation `k` with each end position until it
/// accepts one.
fn sequence(seq: &[Node], s: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match seq.split_first() {
        None => k(pos),
        Some((first, rest)) => node(first, s, pos, &mut |p| sequence(rest, s, p, k)),
    }
}

fn node(n: &Node, s: &[char], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match n {
        Node::Char(c) => s.get(pos) == Some(c) && k(pos + 1),
        Node::Any => s.get(pos).is_some_and(|&c| c != '\n') && k(pos + 1),
        Node::Class { negated, items } => {
            s.get(pos).is_some_and(|&c| items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated) && k(pos + 1)
        }
        Node::Group(a) => alts(a, s, pos, k),
        Node::Repeat { node: inner, min, max } => repeat(inner, *min, *max, 0, s, pos, k),
    }
}

fn repeat(
    inner: &Node,
    min: usize,
    max: Option<usize>,
    done: usize,
    s: &[char],
    pos: usize,
    k: &mut dyn FnMut(usize) -> bool,
) -> bool {
    // Greedy: try one more repetition first; a repetition that consumes nothing ends the loop.
    if max.is_none_or(|m| done < m)
        && node(inner, s, pos, &mut |p| p > pos && repeat(inner, min, max, done + 1, s, p, k))
    {
        return true;
    }
    done >= min && k(pos)
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap().full_match(s)
    }

    #[test]
    fn python_fullmatch_semantics() {
        assert!(m(r".*\.(qkv|proj)", "blocks.0.attn.qkv"));
        assert!(!m(r".*\.(qkv|proj)", "blocks.0.attn.qkv_x"));
        assert!(m(r"blocks\.[0-3]\.mlp\.fc[12]", "blocks.2.mlp.fc1"));
        assert!(!m(r"blocks\.[0-3]\.mlp\.fc[12]", "blocks.4.mlp.fc1"));
        assert!(m(r"(.*\.)?(fc1)", "fc1"));
        assert!(m(r"(.*\.)?(fc1)", "blocks.1.mlp.fc1"));
        assert!(!m(r"(.*\.)?(fc1)", "blocks.1.mlp.xfc1"));
        assert!(m(r"^blocks\.\d+\.attn\.(?:qkv|proj)$", "blocks.12.attn.proj"));
        assert!(m(r"a{2,3}b?", "aaa"));
        assert!(!m(r"a{2,3}", "aaaa"));
        assert!(m(r"[^.]+", "head"));
        assert!(!m(r"[^.]+", "a.b"));
        assert!(m(r"\w+-x", "a_1-x"));
        assert!(m(r"(a|ab)(c|bcd)", "abcd"), "backtracks into an earlier alternative");
        assert!(m(r"(a*)*b", "aaab"), "empty repetitions terminate");
        assert!(m("", ""));
    }

    #[test]
    fn errors_name_the_offset() {
        for (p, at) in [("(ab", 3), ("a)", 1), ("*a", 1), ("[a-", 3), ("a{3,1}", 5), (r"\q", 2)] {
            let e = Regex::new(p).unwrap_err();
            assert_eq!((e.pattern.as_str(), e.at), (p, at), "{e}");
        }
    }
}
