//! Names of the places a signal comes from, shared by the log and metric
//! sides so that both name a service alike.

/// The workload a pod belongs to, from the names Kubernetes' controllers
/// give pods: a Deployment's `<name>-<pod-template-hash>-<suffix>`, a
/// DaemonSet's or Job's `<name>-<suffix>` (suffix: five characters of the
/// alphabet the API server draws random names from, which has no vowels
/// and no `0`, `1`, `3`, so words rarely match), a StatefulSet's
/// `<name>-<ordinal>`. A name of none of these shapes is its own.
pub fn workload_of_pod(pod: &str) -> &str {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = |s: &str| s.bytes().all(|b| ALPHABET.contains(&b));
    let Some((rest, last)) = pod.rsplit_once('-') else {
        return pod;
    };
    if rest.is_empty() {
        return pod;
    }
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) && last.len() <= 5 {
        return rest;
    }
    if last.len() != 5 || !random(last) {
        return pod;
    }
    // The pod-template-hash of a Deployment's ReplicaSet: up to ten of
    // the same characters (all digits in clusters before 1.8).
    match rest.rsplit_once('-') {
        Some((name, hash))
            if !name.is_empty()
                && (6..=10).contains(&hash.len())
                && (random(hash) || hash.bytes().all(|b| b.is_ascii_digit())) =>
        {
            name
        }
        _ => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_from_the_names_controllers_give_pods() {
        for (pod, workload) in [
            ("frontend-7d9f8b8c9-x2x4k", "frontend"),
            ("ts-travel-service-5f55b6cf68-77cfw", "ts-travel-service"),
            ("redis-cart-0", "redis-cart"),
            ("fluent-bit-7xk2p", "fluent-bit"),
            ("legacy-3948272811-x2x4k", "legacy"),
            // Not a controller's name: kept whole.
            ("my-pod", "my-pod"),
            ("cart-service", "cart-service"),
            ("frontend", "frontend"),
        ] {
            assert_eq!(workload_of_pod(pod), workload, "{pod}");
        }
    }
}
