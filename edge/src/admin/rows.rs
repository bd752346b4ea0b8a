//! Rows a dashboard request reads: a page at a time, whole campaign or one owner's, within the
//! runtime's read budget. The Workers free plan allows 50 subrequests per request; a page of the
//! campaign index is one, an owner's page two (a Query and a BatchGetItem of the answers).

use closeloop_core::ports::{InvitationRow, RowCursor, RowQuery, Store, StoreError};

/// Rows asked for per store call.
pub const ROWS_PER_PAGE: usize = 200;
/// Rows a page of one owner's holds at most on DynamoDB.
pub const OWNER_ROWS_PER_PAGE: usize = 100;

/// Store reads one dashboard request may spend on rows: unbounded locally, and on the Worker
/// what its subrequest limit leaves once the session, campaign and counters are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub row_reads: Option<usize>,
    /// Invitations of one person a request exports: each costs about four reads.
    pub person_invitations: Option<usize>,
    /// Invitations of one person a request erases: each costs some ten requests (its items, its
    /// events, the transaction, the emptied counter buckets).
    pub person_erasures: Option<usize>,
}

impl ReadLimits {
    pub const UNBOUNDED: Self = Self { row_reads: None, person_invitations: None, person_erasures: None };
    /// 40 subrequests per dashboard page at most: up to 8 go to the campaign, launches and
    /// counters, the rest to pages of rows; a person's export reads 5 per invitation after a
    /// look-up of 2 per contact key and the suppressions.
    pub const WORKER: Self = Self { row_reads: Some(32), person_invitations: Some(6), person_erasures: Some(2) };

    /// Rows one request can be sure to read: a page of the whole campaign costs one read; an
    /// owner's page two, and holds at most 100 rows (one BatchGetItem of their answers).
    pub fn rows_per_request(self, owner: bool) -> Option<u64> {
        self.row_reads.map(|reads| if owner { (reads / 2 * OWNER_ROWS_PER_PAGE) as u64 } else { (reads * ROWS_PER_PAGE) as u64 })
    }
}

/// What is left of one request's reads.
#[derive(Debug)]
pub struct RowBudget {
    left: Option<usize>,
}

impl RowBudget {
    pub fn new(limits: ReadLimits) -> Self {
        Self { left: limits.row_reads }
    }

    /// Takes `reads` from what is left; `false` (and nothing taken) if that is not enough.
    pub fn spend(&mut self, reads: usize) -> bool {
        match &mut self.left {
            None => true,
            Some(left) if *left >= reads => {
                *left -= reads;
                true
            }
            Some(_) => false,
        }
    }
}

/// Rows read, and where reading stopped.
#[derive(Debug, Default)]
pub struct RowsRead {
    pub rows: Vec<InvitationRow>,
    /// Where the next page starts, unless the last row is read.
    pub next: Option<RowCursor>,
    pub complete: bool,
}

/// Reads pages from `query.after` until `enough` says so, the budget runs out, or the rows end.
/// `keep` drops rows the caller has no use for as they arrive.
pub async fn read_rows(
    store: &dyn Store,
    query: RowQuery<'_>,
    budget: &mut RowBudget,
    keep: impl Fn(&InvitationRow) -> bool,
    enough: impl Fn(&[InvitationRow]) -> bool,
) -> Result<RowsRead, StoreError> {
    let cost = if query.owner.is_some() { 2 } else { 1 };
    let mut read = RowsRead { rows: Vec::new(), next: query.after.cloned(), complete: false };
    loop {
        if !budget.spend(cost) {
            return Ok(read);
        }
        let page = store.rows_page(RowQuery { after: read.next.as_ref(), limit: ROWS_PER_PAGE, ..query }).await?;
        read.rows.extend(page.rows.into_iter().filter(|r| keep(r)));
        read.next = page.next;
        read.complete = read.next.is_none();
        if read.complete || enough(&read.rows) {
            return Ok(read);
        }
    }
}
