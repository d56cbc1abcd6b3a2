//! The process's limit on open descriptors (`ulimit -n`).
//!
//! Replay reads every input at once (the event-time merge needs the next
//! record of each), so it holds one descriptor per file; the API holds one
//! per connection. The soft limit is often 1,024 while the hard limit a
//! process may raise it to is far higher, so both raise it first, and
//! replay says plainly when even the hard limit is too low instead of
//! failing part-way with "too many open files".

/// Descriptors kept for everything but the inputs or connections counted
/// against the limit (the store, Kafka, output files, the listener).
pub const RESERVED: u64 = 128;

/// Raise the soft descriptor limit to the hard one. Returns the soft
/// limit now in force, or `None` where it cannot be read.
pub fn raise() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
        }
        Some(lim.rlim_cur)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Make room for `inputs` files read at once: raise the limit, and if it
/// still cannot hold them, an error that says what to do.
pub fn room_for_inputs(inputs: usize) -> anyhow::Result<()> {
    let Some(limit) = raise() else {
        return Ok(());
    };
    let need = inputs as u64 + RESERVED;
    if need > limit {
        anyhow::bail!(
            "{inputs} input files are read at once, one open file each, and this process \
             may open {limit} (`ulimit -n`, already raised to its hard limit): raise the \
             limit to at least {need} (`ulimit -n {need}`, or LimitNOFILE= for a service), \
             or replay fewer files at a time (name fewer paths, or --exclude some)"
        );
    }
    Ok(())
}
