//! `FingerprintStore` and the fingerprints `BatchWriter` and `DeletionStore` keep in
//! `b24sync_lead_fingerprints` (src/prepare/fingerprint.rs): written with the batch's rows,
//! never by a preview, removed with deleted leads.

use b24sync::model::LeadId;
use b24sync::prepare::{Fingerprint, PreparedBatch};
use b24sync::schema::LEAD;

use crate::backend::{Backend, Kind};
use crate::build::*;

async fn stored(b: &Backend) -> Vec<(LeadId, Fingerprint)> {
    let mut all = b
        .stores
        .fingerprints
        .fingerprints(LEAD)
        .await
        .expect("lead_fingerprints");
    all.sort();
    all
}

fn of(p: &PreparedBatch, id: LeadId) -> Fingerprint {
    p.fingerprints()
        .get(id)
        .unwrap_or_else(|| panic!("lead {id} has a fingerprint"))
}

pub async fn fingerprints_are_written_with_the_batch_and_never_by_a_preview(kind: Kind) {
    let b = Backend::ready(kind).await;
    assert!(stored(&b).await.is_empty(), "a new database holds none");
    let first = batch((1..=5).map(|id| lead(id, 0)).collect());
    let want: Vec<(LeadId, Fingerprint)> = (1..=5).map(|id| (id, of(&first, id))).collect();

    let preview = b
        .stores
        .batches
        .preview_batch(first.clone(), now())
        .await
        .expect("preview");
    assert_eq!(preview.leads_inserted, 5);
    assert!(
        stored(&b).await.is_empty(),
        "a preview writes no fingerprint"
    );

    b.stores
        .batches
        .load_batch(first.clone(), now())
        .await
        .expect("load");
    assert_eq!(stored(&b).await, want);
    assert_eq!(
        b.count("SELECT COUNT(*) FROM b24sync_lead_fingerprints")
            .await,
        5
    );

    // Lead 2 changed: its new fingerprint. Lead 3 now loads with a problem and lead 4 is
    // refused: they lose theirs (so the next sync writes them and keeps their error rows
    // current). Leads 1 and 5 are not in the batch: theirs stay.
    let next = with_rejected(
        vec![lead(2, 1), with_problem(3, "cut")],
        vec![rejected(Some("4"), "not loaded: refused")],
    );
    let changed = of(&next, 2);
    assert_ne!(changed, want[1].1);
    let preview = b
        .stores
        .batches
        .preview_batch(next.clone(), now())
        .await
        .expect("preview");
    assert_eq!(preview.leads_updated, 1);
    assert_eq!(stored(&b).await, want, "a preview changes no fingerprint");
    b.stores
        .batches
        .load_batch(next, now())
        .await
        .expect("load");
    assert_eq!(stored(&b).await, vec![want[0], (2, changed), want[4]]);

    // Loading the same batch again (errors retry, --verify) leaves the same fingerprints.
    b.stores
        .batches
        .load_batch(first, now())
        .await
        .expect("load");
    assert_eq!(stored(&b).await, want);
}

pub async fn delete_leads_removes_their_fingerprints(kind: Kind) {
    let b = Backend::ready(kind).await;
    let all = batch((1..=4).map(|id| lead(id, 0)).collect());
    let fp = |id| (id, of(&all, id));
    b.stores
        .batches
        .load_batch(all.clone(), now())
        .await
        .expect("load");
    assert_eq!(stored(&b).await.len(), 4);
    let deleted = b
        .stores
        .deletions
        .delete_records(LEAD, vec![2, 3, 99])
        .await
        .expect("delete");
    assert_eq!(deleted, 2);
    assert_eq!(stored(&b).await, vec![fp(1), fp(4)]);
    // A lead deleted and then created again is written again, fingerprint and all.
    b.stores
        .batches
        .load_batch(batch(vec![lead(2, 0)]), now())
        .await
        .expect("load");
    assert_eq!(stored(&b).await, vec![fp(1), fp(2), fp(4)]);
}
