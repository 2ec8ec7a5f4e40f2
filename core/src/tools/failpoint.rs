//! Fault injection for tests (feature `failpoints`, off in every shipped build): make a named step panic, to prove
//! that no panic reaches the host app and that a classifier keeps working after one.
//!
//! `SNAKEID_FAILPOINTS="inference=2,load=1"` makes the step `inference` panic on its next 2 hits and `load` on its
//! next one. The variable is re-read on every hit, and a changed value starts the counts afresh, so a test can set
//! it in its own process (Python's `os.environ`) or a child's environment (the JVM). Steps: `load` (compiling a
//! bundle into a classifier), `identify` (before decoding), `inference` (inside tract's run, on the CPU), `gpu.readback`
//! (while the GPU's output buffer is mapped). Where there is no environment (a browser), [`set`] gives the value.

/// Panics when the step `name` has hits left in `SNAKEID_FAILPOINTS`; does nothing without the feature.
#[inline(always)]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    armed::hit(name);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// Uses `spec` instead of `SNAKEID_FAILPOINTS` from now on (the web app's tests: browsers have no environment).
#[cfg(feature = "failpoints")]
pub fn set(spec: &str) {
    *armed::SET.lock().unwrap_or_else(|p| p.into_inner()) = Some(spec.to_string());
}

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// The value given by [`super::set`], which replaces the variable's.
    pub(super) static SET: Mutex<Option<String>> = Mutex::new(None);
    /// The variable's value when last read, and the hits left per step.
    static STATE: Mutex<Option<(String, HashMap<String, u32>)>> = Mutex::new(None);

    pub fn hit(name: &str) {
        let set = SET.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let spec = set.unwrap_or_else(|| std::env::var("SNAKEID_FAILPOINTS").unwrap_or_default());
        let fire = {
            let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
            if state.as_ref().map(|(s, _)| s != &spec).unwrap_or(true) {
                *state = Some((spec.clone(), parse(&spec)));
            }
            let left = state.as_mut().and_then(|(_, m)| m.get_mut(name));
            match left {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            }
        };
        // The lock is released before unwinding, so the state is never poisoned.
        if fire {
            panic!("failpoint {name} fired (SNAKEID_FAILPOINTS)");
        }
    }

    fn parse(spec: &str) -> HashMap<String, u32> {
        spec.split(',')
            .filter_map(|item| {
                let (name, n) = item.split_once('=').unwrap_or((item, "1"));
                let name = name.trim();
                (!name.is_empty()).then(|| (name.to_string(), n.trim().parse().unwrap_or(1)))
            })
            .collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn spec_parsing() {
            let m = super::parse("inference=2, load ,gpu.readback=0,");
            assert_eq!(m.get("inference"), Some(&2));
            assert_eq!(m.get("load"), Some(&1));
            assert_eq!(m.get("gpu.readback"), Some(&0));
            assert_eq!(m.len(), 3);
        }
    }
}
