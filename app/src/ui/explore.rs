//! The task explorer's view as data: the filters of `/tasks` and their URL
//! query (so a view can be linked and survives a reload), the `list`
//! payload they make, and the trail of pages behind the current one. No
//! reactivity: every rule is tested on its own; [`super::explorer`] renders.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::{Cursor, ErrorBody, ListQuery, TaskId, TaskStatus};

/// Page sizes the explorer offers (the default, [`crate::DEFAULT_LIST_LIMIT`], first).
pub const LIMITS: [u32; 4] = [50, 20, 100, 200];

/// Every status a filter may name, in lifecycle order.
pub const STATUSES: [TaskStatus; 8] = [
    TaskStatus::Scheduled,
    TaskStatus::Waiting,
    TaskStatus::Queued,
    TaskStatus::Running,
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
    TaskStatus::TimedOut,
];

/// What `/tasks` shows, as its URL query has it: `status`, `kind`, `key`
/// (by prefix when it ends in `*`), `limit`, `before` (the cursor of the
/// page shown) and `id` (a task looked up by id instead of a listing).
/// Values are kept as written; [`Explore::query`] validates them with the
/// protocol's own rules, so the page says what `list` would refuse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explore {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub key: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
    pub id: Option<String>,
}

/// Percent-encodes a query component: everything but `A-Z a-z 0-9 - _ . ~`
/// (RFC 3986's unreserved characters), byte by byte in UTF-8. The same on
/// the server and in the browser, so rendered links hydrate unchanged.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Explore {
    /// The view from decoded query pairs (unknown names are ignored;
    /// empty values are absent, as `list` reads them; the last one wins).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut view = Self::default();
        for (k, v) in pairs {
            let v = v.as_ref().trim();
            let v = (!v.is_empty()).then(|| v.to_owned());
            match k.as_ref() {
                "status" => view.status = v,
                "kind" => view.kind = v,
                "key" => view.key = v,
                "limit" => view.limit = v,
                "before" => view.before = v,
                "id" => view.id = v,
                _ => {}
            }
        }
        view
    }

    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("id", &self.id),
            ("status", &self.status),
            ("kind", &self.kind),
            ("key", &self.key),
            ("limit", &self.limit),
            ("before", &self.before),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }

    /// The URL of this view: `/tasks` and its query, if any.
    pub fn href(&self) -> String {
        let query = self
            .pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if query.is_empty() {
            "/tasks".to_owned()
        } else {
            format!("/tasks?{query}")
        }
    }

    /// The `list` payload of this view.
    pub fn payload(&self) -> Value {
        let mut obj = Map::new();
        for (k, v) in self.pairs() {
            if k != "id" {
                obj.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
        Value::Object(obj)
    }

    /// The validated query, or why `list` would refuse it.
    pub fn query(&self) -> Result<ListQuery, ErrorBody> {
        ListQuery::parse(self.payload())
    }

    /// The task looked up by id, if the view is a search: `Err` with a
    /// message when the text is not a task id.
    pub fn search(&self) -> Option<Result<TaskId, String>> {
        let raw = self.id.as_deref()?;
        Some(
            raw.parse::<TaskId>()
                .map_err(|_| format!("{raw:?} is not a task id (a UUID such as 0190a5c3-…)")),
        )
    }

    /// The same filters from the newest page on.
    pub fn first_page(&self) -> Self {
        Self {
            before: None,
            id: None,
            ..self.clone()
        }
    }

    /// The same filters on the page that starts at `cursor`.
    pub fn page(&self, cursor: Cursor) -> Self {
        Self {
            before: Some(cursor.to_string()),
            ..self.first_page()
        }
    }

    /// Whether this is the newest page of its filters (the one new tasks
    /// appear on).
    pub fn is_first_page(&self) -> bool {
        self.before.is_none()
    }

    /// Whether any filter is set (the page size aside).
    pub fn filtered(&self) -> bool {
        self.status.is_some() || self.kind.is_some() || self.key.is_some()
    }
}

/// The pages behind the one shown, for "Newer": each time "Older" is
/// followed, the cursor of the page left (`None` for the newest) is pushed.
/// The URL has only the page shown, so a linked or reloaded page far back
/// has no trail: "Newer" then goes to the newest page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trail {
    /// `(filters, before)` of each page left, oldest visit first.
    pages: Vec<(Explore, Option<String>)>,
}

impl Trail {
    /// Records leaving `from` for its older page.
    pub fn push(&mut self, from: &Explore) {
        self.pages.push((from.first_page(), from.before.clone()));
    }

    /// Where "Newer" goes from `at`: the page left for it, if the trail
    /// has one for the same filters, else the newest page. Pops it.
    pub fn newer(&mut self, at: &Explore) -> Explore {
        let filters = at.first_page();
        match self.pages.pop() {
            Some((f, before)) if f == filters => Explore { before, ..filters },
            _ => {
                self.pages.clear();
                filters
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::KeyMatch;
    use serde_json::json;

    #[test]
    fn query_components_are_encoded_the_same_everywhere() {
        assert_eq!(encode("report:42:*"), "report%3A42%3A%2A");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(encode("Az09-_.~"), "Az09-_.~");
    }

    #[test]
    fn a_view_round_trips_through_its_url() {
        let view = Explore::from_pairs([
            ("status", "failed"),
            ("kind", "fail"),
            ("key", "report:*"),
            ("limit", "20"),
            ("before", "17"),
            ("token", "ignored"),
        ]);
        assert_eq!(
            view.href(),
            "/tasks?status=failed&kind=fail&key=report%3A%2A&limit=20&before=17"
        );
        assert_eq!(
            view.payload(),
            json!({"status": "failed", "kind": "fail", "key": "report:*", "limit": "20", "before": "17"})
        );
        let q = view.query().unwrap();
        assert_eq!(q.status, Some(TaskStatus::Failed));
        assert_eq!(q.key, Some(KeyMatch::Prefix("report:".into())));
        assert_eq!((q.limit, q.before), (20, Some(Cursor(17))));
        assert_eq!(Explore::default().href(), "/tasks");
        assert_eq!(Explore::default().payload(), json!({}));
    }

    #[test]
    fn empty_values_are_absent_and_bad_ones_are_refused_as_list_would() {
        let view = Explore::from_pairs([("status", ""), ("kind", "  "), ("key", "k")]);
        assert_eq!(view.href(), "/tasks?key=k");
        let bad = Explore::from_pairs([("status", "done")])
            .query()
            .unwrap_err();
        assert!(
            bad.message.starts_with("status must be one of"),
            "{}",
            bad.message
        );
        let bad = Explore::from_pairs([("limit", "0")]).query().unwrap_err();
        assert!(bad.message.contains("1..=500"), "{}", bad.message);
    }

    #[test]
    fn a_search_names_a_task_or_says_why_not() {
        assert_eq!(Explore::default().search(), None);
        let id = "0190a5c3-0000-7000-8000-000000000001";
        let view = Explore::from_pairs([("id", id), ("kind", "echo")]);
        assert_eq!(view.search(), Some(Ok(id.parse().unwrap())));
        assert!(
            view.href()
                .starts_with(&format!("/tasks?id={id}&kind=echo"))
        );
        assert!(matches!(
            Explore::from_pairs([("id", "abc")]).search(),
            Some(Err(_))
        ));
        // Paging or filtering leaves the search.
        assert_eq!(view.first_page().id, None);
    }

    #[test]
    fn newer_goes_back_along_the_trail_then_to_the_newest_page() {
        let first = Explore::from_pairs([("kind", "echo")]);
        let second = first.page(Cursor(30));
        let third = second.page(Cursor(10));
        let mut trail = Trail::default();
        trail.push(&first);
        trail.push(&second);
        assert_eq!(trail.newer(&third), second);
        assert_eq!(trail.newer(&second), first);
        // Nothing left: the newest page of the same filters.
        assert_eq!(trail.newer(&third), first);
        // A trail of other filters is not followed.
        trail.push(&second);
        let other = Explore::from_pairs([("kind", "fail")]).page(Cursor(5));
        assert_eq!(trail.newer(&other), other.first_page());
        assert_eq!(trail, Trail::default());
        assert!(first.is_first_page() && !second.is_first_page());
    }
}
