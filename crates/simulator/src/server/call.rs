//! One call (not `batch`) against the portal's limits: the method's operating budget
//! (blocked → 429, charged afterwards), the `time` block of every answer, the served-call
//! counters, and the injected page faults of `crm.lead.list`.

use serde_json::{json, Map, Value};

use super::{lock, Shared};
use crate::faults::PageFaultKind;
use crate::limits::OperatingState;
use crate::methods::{self, CallErr, CallOk, Caller};

impl Shared {
    pub(super) fn operating_state(&self, method: &str) -> OperatingState {
        let now = self.portal.mono_secs();
        match &self.operating {
            Some(o) => lock(o).state(method, now),
            None => OperatingState {
                operating: 0.0,
                reset_at: None,
                blocked: false,
            },
        }
    }

    fn charge(&self, method: &str, secs: f64) -> OperatingState {
        lock(&self.stats).server_time_secs += secs;
        let now = self.portal.mono_secs();
        match &self.operating {
            Some(o) => lock(o).charge(method, now, secs),
            None => OperatingState {
                operating: 0.0,
                reset_at: None,
                blocked: false,
            },
        }
    }

    /// The `time` block. `start`/`finish` are unix seconds; `processing` is simulated.
    pub(super) fn time_block(&self, processing: f64, op: OperatingState) -> Value {
        let now = self.portal.now();
        let start = now.timestamp_millis() as f64 / 1000.0;
        let finish = start + processing;
        let finish_dt = now + chrono::Duration::microseconds((processing * 1e6) as i64);
        let window = self
            .config
            .operating_limit
            .map(|o| o.window_secs as f64)
            .unwrap_or(600.0);
        let reset_in = op
            .reset_at
            .map(|r| r - self.portal.mono_secs())
            .unwrap_or(window);
        let fmt =
            |d: chrono::DateTime<chrono::FixedOffset>| d.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
        if self.config.sparse_time {
            return json!({
                "start": start.floor() as i64,
                "finish": finish.ceil() as i64,
                "duration": finish - start,
                "processing": processing,
                "date_start": fmt(now),
                "date_finish": fmt(finish_dt),
            });
        }
        json!({
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": processing,
            "date_start": fmt(now),
            "date_finish": fmt(finish_dt),
            "operating_reset_at": (start + reset_in.max(0.0)).ceil() as i64,
            "operating": (op.operating * 1e4).round() / 1e4,
        })
    }

    pub(super) fn count_served(&self, method: &str) {
        *lock(&self.stats)
            .by_method
            .entry(method.to_string())
            .or_insert(0) += 1;
    }

    fn operating_error(&self, op: OperatingState) -> (CallErr, Value) {
        lock(&self.stats).operating_limited += 1;
        (
            CallErr::new(
                429,
                "OPERATION_TIME_LIMIT",
                "Method is blocked due to operation time limit.",
            ),
            self.time_block(0.0, op),
        )
    }

    /// Runs one call (not `batch`) with its operating budget: (outcome, time block, cost).
    /// `chained`: a batch sub-call whose parameters referred to an earlier one.
    pub(super) fn run_call(
        &self,
        method: &str,
        params: &Map<String, Value>,
        chained: bool,
        caller: &Caller,
    ) -> (Result<CallOk, CallErr>, Value, f64) {
        let op = self.operating_state(method);
        if op.blocked {
            let (e, t) = self.operating_error(op);
            return (Err(e), t, 0.0);
        }
        self.count_served(method);
        let (mut res, cost) = methods::call(&self.ctx(caller), method, params);
        if let Ok(ok) = &mut res {
            self.apply_page_fault(method, params, chained, ok);
        }
        let op = self.charge(method, cost);
        (res, self.time_block(cost, op), cost)
    }

    /// An injected [`super::PageFault`] for an ascending `crm.lead.list` page.
    fn apply_page_fault(
        &self,
        method: &str,
        params: &Map<String, Value>,
        chained: bool,
        ok: &mut CallOk,
    ) {
        if method != "crm.lead.list" {
            return;
        }
        let ascending = params
            .get("order")
            .and_then(|o| o.get("ID"))
            .and_then(Value::as_str)
            .is_some_and(|d| d.eq_ignore_ascii_case("ASC"));
        let after = params
            .get("filter")
            .and_then(|f| f.get(">ID"))
            .and_then(|v| match v {
                Value::String(s) => s.trim().parse::<i64>().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            });
        let (true, Some(after)) = (ascending, after) else {
            return;
        };
        let Some(kind) = lock(&self.page_faults).take(after, chained) else {
            return;
        };
        lock(&self.stats).faults_served += 1;
        if let Value::Array(rows) = &mut ok.result {
            match kind {
                PageFaultKind::Empty => rows.clear(),
                PageFaultKind::Truncated { keep } => rows.truncate(keep),
            }
        }
    }
}
