//! The tables and findings `benches/methods.rs` prints (Markdown, for BENCHMARKS.md).

use b24sync::extract::paging::{BATCH_SIZE, PAGE_SIZE};

use super::{Method, Options, Row};

pub(super) fn secs(s: f64) -> String {
    if s.is_nan() {
        "—".to_string()
    } else if s >= 7200.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

pub(super) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn print_table(rows: &[Row], with_step: bool) {
    println!(
        "| leads |{} method | requests | server time | wall | leads/s | 503 / 429 | peak RSS | real-portal floor |",
        if with_step { " ID step |" } else { "" }
    );
    println!(
        "|---:|{}---|---:|---:|---:|---:|---:|---:|---:|",
        if with_step { "---:|" } else { "" }
    );
    for r in rows {
        let mark = if r.sampled.is_some() { "≈ " } else { "" };
        let label = match r.sampled {
            Some(s) => format!(
                "{} — *extrapolated from the first {} leads*",
                r.method.label(),
                thousands(s as u64)
            ),
            None => r.method.label().to_string(),
        };
        println!(
            "| {} |{} {} | {mark}{} | {mark}{} | {mark}{} | {mark}{:.0} | {} / {} | {:.1} MiB{} | {mark}{} |",
            thousands(r.n as u64),
            if with_step { format!(" {} |", r.id_step) } else { String::new() },
            label,
            thousands(r.requests),
            secs(r.server_secs),
            secs(r.wall_secs),
            r.leads as f64 / r.wall_secs.max(1e-9),
            r.rate_limited,
            r.operating_limited,
            r.rss_kib as f64 / 1024.0,
            if r.sampled.is_some() { " (sample)" } else { "" },
            secs(r.real_floor_secs),
        );
    }
}

pub(super) fn print_report(o: &Options, rows: &[Row], sparse: &[Row], memory: &[Row]) {
    println!();
    println!(
        "### Methods (rate limit 2/s burst 50, operating budget 480 s / 600 s, sleep_scale {}, latency {} ms)",
        o.scale, o.latency_ms
    );
    println!();
    print_table(rows, false);
    println!();
    // (d): the run's question batch and its `user.get`; (p): the labels call and the probe
    // batch. Either way two requests besides the lead batches.
    for r in rows
        .iter()
        .chain(sparse)
        .filter(|r| matches!(r.method, Method::D | Method::S | Method::P))
    {
        let floor = (r.n as u64).div_ceil((BATCH_SIZE * PAGE_SIZE) as u64) + 2;
        println!(
            "- ({}) at {} leads (ID step {}): {} requests, floor ceil(N/2,500) + 2 = {} → {}; {} leads in the database.",
            match r.method {
                Method::D => "d",
                Method::S => "s",
                _ => "p",
            },
            thousands(r.n as u64),
            r.id_step,
            r.requests,
            floor,
            if r.requests <= floor { "at the floor" } else { "ABOVE THE FLOOR" },
            thousands(r.leads),
        );
    }
    for r in rows
        .iter()
        .chain(sparse)
        .filter(|r| matches!(r.method, Method::S | Method::P))
    {
        let me = if r.method == Method::S { "s" } else { "p" };
        let same = |m: Method| {
            rows.iter()
                .chain(sparse)
                .find(|x| x.method == m && x.n == r.n && x.id_step == r.id_step)
        };
        for (m, name) in [(Method::D, "d"), (Method::F, "f")] {
            let Some(o) = same(m) else { continue };
            println!(
                "- {} leads (ID step {}): ({me}) against ({name}): wall {:.2}×, server time {:.3}× ({:+.1} %), requests {:+}.",
                thousands(r.n as u64),
                r.id_step,
                r.wall_secs / o.wall_secs.max(1e-9),
                r.server_secs / o.server_secs.max(1e-9),
                (r.server_secs / o.server_secs.max(1e-9) - 1.0) * 100.0,
                r.requests as i64 - o.requests as i64,
            );
        }
    }
    for &n in &o.leads {
        let here: Vec<&Row> = rows.iter().filter(|r| r.n == n).collect();
        let Some(d) = here.iter().find(|r| r.method == Method::D) else {
            continue;
        };
        let lowest_server = here
            .iter()
            .all(|r| r.method == Method::D || r.server_secs > d.server_secs);
        let lowest_wall = here
            .iter()
            .all(|r| r.method == Method::D || r.wall_secs > d.wall_secs);
        println!(
            "- {} leads: (d) lowest server time: {}; lowest wall time: {}.",
            thousands(n as u64),
            if lowest_server { "yes" } else { "NO" },
            if lowest_wall { "yes" } else { "NO" },
        );
    }
    if !sparse.is_empty() {
        println!();
        println!("### Sparse IDs (same limits)");
        println!();
        print_table(sparse, true);
    }
    if !memory.is_empty() {
        println!();
        println!("### Peak memory of (d) (limits off, no server sleep)");
        println!();
        println!("| leads | requests | wall | leads/s | peak RSS |");
        println!("|---:|---:|---:|---:|---:|");
        for r in memory {
            println!(
                "| {} | {} | {} | {:.0} | {:.1} MiB |",
                thousands(r.n as u64),
                thousands(r.requests),
                secs(r.wall_secs),
                r.leads as f64 / r.wall_secs.max(1e-9),
                r.rss_kib as f64 / 1024.0
            );
        }
    }
}
