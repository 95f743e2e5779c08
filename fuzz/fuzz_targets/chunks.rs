// Shared by the targets that compare whole input with the same input in chunks:
// `[n][n chunk sizes][body]` -> (plan, body), and the chunking itself.

/// Split the input into a chunking plan and the stream body.
pub fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n % 16).min(rest.len());
    Some(rest.split_at(n))
}

/// The body in chunks of the sizes in `plan` (cycled, each 1..=64; an empty plan: one
/// chunk).
pub fn chunks<'a>(body: &'a [u8], plan: &[u8]) -> Vec<&'a [u8]> {
    if plan.is_empty() {
        return vec![body];
    }
    let mut out = Vec::new();
    let (mut pos, mut i) = (0, 0);
    while pos < body.len() {
        let n = usize::from(plan[i % plan.len()] % 64).max(1);
        let end = (pos + n).min(body.len());
        out.push(&body[pos..end]);
        pos = end;
        i += 1;
    }
    out
}
