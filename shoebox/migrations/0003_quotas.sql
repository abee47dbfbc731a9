-- Quotas: how much of a kind one uploader may hold (Kind::max_bytes_per_user and
-- max_photos_per_user). The usage is never stored: it is counted from shoebox_photos each time
-- (verified photos by their size, forms not yet completed by their declared size until they
-- expire), so a deleted photo frees its share at once and nothing can drift.

-- One row per uploader and kind with a quota. Every statement that adds to an uploader's usage
-- of a kind (signing a form, completing an upload) moves this row's turn in the same
-- transaction, after counting. Two such statements therefore never both count and then both
-- write: the second waits on the row, and sees that its count is stale (the turn moved since
-- its snapshot) and counts again. See db/quotas.rs for why that makes the count exact on
-- Postgres under READ COMMITTED, where a statement's reads come from its start.
create table shoebox_quota_turns (
    -- the host's uploader id, as in shoebox_photos
    uploader_id text not null,
    kind        text not null,
    turn        bigint not null,
    constraint shoebox_quota_turns_pkey primary key (uploader_id, kind)
);

-- The count: one uploader's photos of one kind that are not tombstones. Tombstones stay in the
-- table for good, so without the condition a long-lived account's count would read them all.
create index shoebox_photos_uploader_kind_live_idx on shoebox_photos (uploader_id, kind) where state <> 'deleted';
