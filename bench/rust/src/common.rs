//! Shared by the Rust benchmark programs: arguments, CPU time, the JSON result lines
//! (the same fields the C and Go drivers print; scripts/bench_report.py reads them).

#![allow(dead_code)]

pub struct Args {
    pub case: String,
    pub size: usize,
    pub secs: f64,
    pub max: u64,
    pub count: u64,
}

impl Args {
    pub fn parse() -> Args {
        let mut a = Args {
            case: "oneway".into(),
            size: 1200,
            secs: 2.0,
            max: 20_000_000,
            count: 10_000,
        };
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
            match k.as_str() {
                "--case" => a.case = v,
                "--size" => a.size = v.parse().expect("--size"),
                "--secs" => a.secs = v.parse().expect("--secs"),
                "--max" => a.max = v.parse().expect("--max"),
                "--count" => a.count = v.parse().expect("--count"),
                _ => panic!("unknown option {k}"),
            }
        }
        a.secs = a.secs.clamp(0.1, 60.0);
        a.count = a.count.clamp(1, 1_000_000);
        a
    }
}

/// User + system CPU time of this process (every thread: both ends of the benchmark).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn json_oneway(imp: &str, size: usize, sent: u64, got: u64, wall: f64, cpu: f64) -> String {
    let wall = wall.max(1e-9);
    serde_json::json!({
        "impl": imp,
        "case": "oneway",
        "size": size,
        "sent": sent,
        "received": got,
        "secs": wall,
        "rate": got as f64 / wall,
        "mb_per_s": (got as f64 * size as f64) / wall / 1e6,
        "loss_pct": if sent == 0 { 0.0 } else { 100.0 * (sent.saturating_sub(got)) as f64 / sent as f64 },
        "cpu_us_per_dgram": if got == 0 { 0.0 } else { cpu * 1e6 / got as f64 },
    })
    .to_string()
}

pub fn json_rtt(imp: &str, size: usize, count: u64, mut samples: Vec<f64>) -> String {
    samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let pct = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i] * 1e6
    };
    serde_json::json!({
        "impl": imp,
        "case": "rtt",
        "size": size,
        "pings": count,
        "answered": samples.len(),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
    })
    .to_string()
}
