//! The process's limit on open descriptors (`ulimit -n`).
//!
//! Replay holds a bounded number of regular files open at once (the
//! merge's reader pool parks the others, `engine::merge_bounded`) plus
//! every pipe or FIFO it reads (those are read from one open); the API
//! holds one descriptor per connection. The soft limit is often 1,024
//! while the hard limit a process may raise it to is far higher, so both
//! raise it first, replay fits its pool into what is left, and says
//! plainly when even the hard limit is too low instead of failing part-way
//! with "too many open files".

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

/// Make room for replay's inputs: `pinned` streams held open from start
/// to end (pipes, FIFOs) and `files` regular files, of which the reader
/// pool holds at most [`engine::OPEN_INPUTS`] open at once. Raises the
/// limit, and returns how many regular files may be open at once (fewer
/// than the pool's default under a low limit, at least one); an error
/// that says what to do when even that does not fit.
pub fn room_for_inputs(pinned: usize, files: usize) -> anyhow::Result<usize> {
    let Some(limit) = raise() else {
        return Ok(engine::OPEN_INPUTS);
    };
    let need = RESERVED + pinned as u64 + u64::from(files > 0);
    if need > limit {
        let streams = if pinned > 0 {
            format!("{pinned} pipes or FIFOs are read at once, one open file each, and ")
        } else {
            String::new()
        };
        anyhow::bail!(
            "replay needs {need} open files ({streams}{RESERVED} kept for outputs and \
             at least one for the {files} files it reads a few at a time), and this \
             process may open {limit} (`ulimit -n`, already raised to its hard limit): \
             raise the limit to at least {need} (`ulimit -n {need}`, or LimitNOFILE= for \
             a service)"
        );
    }
    let room = (limit - RESERVED - pinned as u64).min(engine::OPEN_INPUTS as u64);
    Ok((room as usize).max(1))
}
