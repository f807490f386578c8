//! A change to a portal record, as the portal's event system sees it: which entity, which
//! record, added, updated or deleted. `data.rs` reports every change through a
//! [`ChangeHook`]; `events.rs` turns it into outbound posts and offline-queue rows. The event
//! name is built from the entity name (`ONCRM` + `LEAD` + `UPDATE`), so another entity only
//! has to report its changes under its own name and be listed in [`ENTITIES`].

use std::sync::Arc;

/// Entities whose events the portal knows (what `event.bind` accepts), as they appear in
/// event names (`ONCRMLEADADD`); `Entity::event_entity` (entity.rs) gives each one's.
pub(crate) const ENTITIES: &[&str] = &["LEAD", "CONTACT", "COMPANY"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Add,
    Update,
    Delete,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 3] = [ChangeKind::Add, ChangeKind::Update, ChangeKind::Delete];

    fn suffix(self) -> &'static str {
        match self {
            ChangeKind::Add => "ADD",
            ChangeKind::Update => "UPDATE",
            ChangeKind::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub entity: &'static str,
    pub kind: ChangeKind,
    pub id: i64,
}

/// `ONCRM{ENTITY}{ADD|UPDATE|DELETE}`, upper case as the portal sends it.
pub(crate) fn event_name(entity: &str, kind: ChangeKind) -> String {
    format!("ONCRM{}{}", entity.to_ascii_uppercase(), kind.suffix())
}

impl Change {
    pub fn event_name(&self) -> String {
        event_name(self.entity, self.kind)
    }
}

/// Every event name the portal knows.
pub(crate) fn known_events() -> impl Iterator<Item = String> {
    ENTITIES
        .iter()
        .flat_map(|e| ChangeKind::ALL.iter().map(move |k| event_name(e, *k)))
}

/// Called after each change, outside the portal's lock.
pub(crate) type ChangeHook = Arc<dyn Fn(Change) + Send + Sync>;
