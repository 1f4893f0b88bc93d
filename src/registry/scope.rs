//! Token scopes (Docker token-auth spec "Requesting a token"; docs/registry-notes.md §15): what
//! each kind of request needs, with the push scope first because some token servers read only the
//! first.

use std::fmt;

use crate::error::{Error, Result};

/// One or more `type:name:actions` scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Scope(Vec<String>);

impl Scope {
    /// GET and HEAD.
    pub fn pull(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull")])
    }
    /// POST, PUT and PATCH: 2.8.2 refuses `push` alone.
    pub fn push(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:pull,push")])
    }
    /// What deleting from `repo` needs.
    pub fn delete(repo: &str) -> Scope {
        Scope(vec![format!("repository:{repo}:delete")])
    }
    /// What listing the registry's repositories needs.
    pub fn catalog() -> Scope {
        Scope(vec!["registry:catalog:*".to_string()])
    }
    /// A cross-repository mount: push on the target and pull on the source, in one token.
    pub fn mount(repo: &str, from: &str) -> Scope {
        Scope(vec![
            format!("repository:{repo}:pull,push"),
            format!("repository:{from}:pull"),
        ])
    }

    /// The scope `regtool auth <repo> [action...]` asks for: words without `:` are actions on
    /// the repository (default `pull`), words shaped `type:name:actions` are extra scopes.
    pub fn from_words(repo: &str, words: &[String]) -> Result<Scope> {
        let mut actions: Vec<&str> = Vec::new();
        let mut extra = Vec::new();
        for word in words {
            if word.contains(':') {
                let (kind, rest) = word.split_once(':').unwrap_or_default();
                let (name, acts) = rest.rsplit_once(':').unwrap_or_default();
                if kind.is_empty()
                    || name.is_empty()
                    || acts.is_empty()
                    || kind.contains(char::is_whitespace)
                {
                    return Err(Error::usage(format!(
                        "invalid scope {word:?}: expected type:name:actions"
                    )));
                }
                extra.push(word.clone());
            } else {
                for a in word.split(',') {
                    if !matches!(a, "pull" | "push" | "delete" | "*") {
                        return Err(Error::usage(format!(
                            "invalid action {a:?}: expected pull, push, delete or *"
                        )));
                    }
                    if !actions.contains(&a) {
                        actions.push(a);
                    }
                }
            }
        }
        if actions.is_empty() {
            actions.push("pull");
        }
        let mut scopes = vec![format!("repository:{repo}:{}", actions.join(","))];
        scopes.extend(extra);
        Ok(Scope(scopes))
    }

    /// Parses a challenge's `scope` parameter (space-separated scopes).
    pub fn parse(text: &str) -> Scope {
        Scope(
            text.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// This scope and `other`'s, without repeats, this one's first.
    pub fn union(&self, other: &Scope) -> Scope {
        let mut all = self.0.clone();
        for s in &other.0 {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        Scope(all)
    }

    /// Each `type:name:actions` part, in order.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    /// Whether the scope asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scopes_for_each_operation() {
        assert_eq!(Scope::push("a/b").to_string(), "repository:a/b:pull,push");
        assert_eq!(
            Scope::mount("a", "b").to_string(),
            "repository:a:pull,push repository:b:pull"
        );
        assert_eq!(Scope::parse(" x  y ").parts(), ["x", "y"]);
        assert_eq!(
            Scope::pull("a")
                .union(&Scope::parse("repository:a:pull z"))
                .to_string(),
            "repository:a:pull z"
        );
    }

    #[test]
    fn auth_words() {
        assert_eq!(
            Scope::from_words("r", &[]).unwrap().to_string(),
            "repository:r:pull"
        );
        assert_eq!(
            Scope::from_words("r", &words(&["pull", "push", "pull"]))
                .unwrap()
                .to_string(),
            "repository:r:pull,push"
        );
        assert_eq!(
            Scope::from_words("r", &words(&["*", "repository:other/repo:pull"]))
                .unwrap()
                .to_string(),
            "repository:r:* repository:other/repo:pull"
        );
        assert_eq!(
            Scope::from_words("r", &words(&["repository:host:5000/x:pull"]))
                .unwrap()
                .parts()[1],
            "repository:host:5000/x:pull"
        );
        for bad in ["fly", "a:b", ":x:y", "repository::pull"] {
            assert!(Scope::from_words("r", &words(&[bad])).is_err(), "{bad}");
        }
    }
}
