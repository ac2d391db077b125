//! The audit log: `GET …/activities?from_date&to_date` (inclusive bounds, see `dates.rs`;
//! newest first; only rows visible by the emulator clock; no pagination; the rows go out
//! pre-serialized) and `GET …/activities/{activityId}`. Runs without the inventory lock.

use super::{ApiError, Ctx, Result};
use crate::emulator::body::Reply;
use crate::emulator::dates::{self, Bound};

fn bound(ctx: &Ctx<'_>, name: &str, which: Bound) -> Result<Option<i64>> {
    let Some(raw) = ctx.query_one(name) else {
        return Ok(None);
    };
    let allow_datetime = ctx.inner.faults.accept_datetime();
    let p = dates::parse(name, raw, allow_datetime).map_err(ApiError::bad_request)?;
    Ok(Some(dates::bound_ms(p, which)))
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<Reply> {
    let from = bound(ctx, "from_date", Bound::From)?;
    let to = bound(ctx, "to_date", Bound::To)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::bad_request("from_date must not be after to_date"));
    }
    let log = ctx
        .inner
        .log(ctx.org_id())
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    let rows =
        log.read()
            .unwrap_or_else(|p| p.into_inner())
            .query(from, to, ctx.now.timestamp_millis());
    Ok(Reply::items(rows))
}

pub(super) fn get(ctx: &Ctx<'_>) -> Result<Reply> {
    let id = ctx.param("activityId");
    let log = ctx
        .inner
        .log(ctx.org_id())
        .ok_or_else(|| ApiError::not_found("Organization not found"))?;
    let row = log
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(id, ctx.now.timestamp_millis());
    let row = row.ok_or_else(|| ApiError::not_found(format!("Activity {id} not found")))?;
    Ok(Reply::raw(row))
}
