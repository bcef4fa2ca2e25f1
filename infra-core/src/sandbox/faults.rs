//! Fault injection for tests (the `faults` feature): the next matching calls fail with a given
//! error, before taking effect or after (a lost response).

use std::sync::Mutex;

use crate::dsl::Address;
use crate::provider::ProviderError;

/// Where a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultOp {
    /// Reads.
    Read,
    /// Creates.
    Create,
    /// Updates.
    Update,
    /// Deletes.
    Delete,
}

/// An injected fault: the next `times` matching calls fail with `error`. With `after_effect`,
/// the call takes effect first and then reports the error (a lost response).
#[derive(Clone, Debug)]
pub struct Fault {
    /// Which calls.
    pub op: FaultOp,
    /// Only calls on this address (`None`: any).
    pub address: Option<Address>,
    /// The error returned.
    pub error: ProviderError,
    /// How many calls fail.
    pub times: u32,
    /// Take effect, then fail (the response was lost).
    pub after_effect: bool,
}

/// The faults still to happen.
#[derive(Default)]
pub(super) struct Faults(Mutex<Vec<Fault>>);

impl Faults {
    pub(super) fn inject(&self, fault: Fault) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(fault);
    }

    /// Called before a call takes effect: `Err` when a fault makes it fail now, `Ok(Some)`
    /// with the error to report once it has taken effect (a lost response), `Ok(None)` when
    /// no fault applies.
    pub(super) fn before(
        &self,
        op: FaultOp,
        address: Option<&Address>,
    ) -> Result<Option<ProviderError>, ProviderError> {
        match self.take(op, address) {
            Some(f) if f.after_effect => Ok(Some(f.error)),
            Some(f) => Err(f.error),
            None => Ok(None),
        }
    }

    fn take(&self, op: FaultOp, address: Option<&Address>) -> Option<Fault> {
        let mut faults = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = faults.iter().position(|f| {
            f.op == op && f.times > 0 && (f.address.is_none() || f.address.as_ref() == address)
        })?;
        faults[i].times -= 1;
        let f = faults[i].clone();
        if faults[i].times == 0 {
            faults.remove(i);
        }
        Some(f)
    }
}
