-- Shoebox's tables: photos, their variants, the upload-form windows and the job locks.
--
-- Every name (tables, constraints, indexes) starts with shoebox_, so they sit in a host's own
-- database beside its own users, sessions and photos tables without touching them; their
-- history is kept in shoebox_migrations, never in sqlx's _sqlx_migrations, which belongs to
-- the host's own migrations.
--
-- Times are bigint milliseconds since the Unix epoch and ids are text: one file serves
-- Postgres and SQLite, and every query runs unchanged on both.

-- One row per photo, written when the upload form is signed, before any byte is uploaded.
create table shoebox_photos (
    photo_id        text primary key,
    kind            text not null,
    -- the configured bucket name, not the S3 one: buckets can be renamed in S3 by configuration
    bucket          text not null,
    -- the host's own id for the uploader, opaque to Shoebox: no foreign key, so any users
    -- table (or none at all) will do
    uploader_id     text not null,
    state           text not null
        constraint shoebox_photos_state_check
        check (state in ('signed', 'ready', 'in_use', 'released', 'deleted')),
    incoming_key    text not null constraint shoebox_photos_incoming_key_key unique,
    object_key      text constraint shoebox_photos_object_key_key unique,
    declared_type   text,
    image_type      text,
    max_bytes       bigint not null,
    byte_size       bigint,
    width           bigint,
    height          bigint,
    filename        text,
    form_expires_at bigint not null,
    created_at      bigint not null,
    verified_at     bigint,
    attached_at     bigint,
    keep_until      bigint,
    deleted_at      bigint,
    deleted_reason  text,
    -- A runner about to delete a photo first claims its row: claimed_by names the claim and
    -- claimed_until is when another runner may take it over (the first one died). A claimed
    -- row is doomed: attach refuses it, so no photo is attached while its objects go.
    claimed_by      text,
    claimed_until   bigint,
    -- a tombstone always says when and why; a live photo has neither
    constraint shoebox_photos_deleted_check
        check ((state = 'deleted') = (deleted_at is not null and deleted_reason is not null)),
    constraint shoebox_photos_ready_check
        check (state not in ('ready', 'in_use', 'released') or (object_key is not null and image_type is not null))
);
-- an uploader's photos, newest first
create index shoebox_photos_uploader_created_idx on shoebox_photos (uploader_id, created_at);
-- the clean-up job's scan of uploads nobody attached
create index shoebox_photos_state_created_idx on shoebox_photos (state, created_at);
-- the clean-up job's keep-until scan of in-use and released photos
create index shoebox_photos_state_keep_until_idx on shoebox_photos (state, keep_until);

-- Variants: the smaller renditions of a photo (thumb, display, ...), one row per photo, name and
-- recipe. The row is written before the work starts ('making'), so the uniqueness constraint is
-- the claim: of two requests, dynos or resize-all runs wanting the same variant, one makes it.
create table shoebox_variants (
    photo_id    text not null references shoebox_photos (photo_id) on delete cascade,
    name        text not null,
    -- a short hash of what the variant is made with (box, quality, engine revision): a changed
    -- recipe is a new row and a new object, never an overwrite of a cached one
    recipe_hash text not null,
    state       text not null
        constraint shoebox_variants_state_check check (state in ('making', 'ready', 'failed')),
    object_key  text,
    image_type  text,
    width       bigint,
    height      bigint,
    byte_size   bigint,
    -- when the current claim was taken: a claim older than a few minutes belongs to a process
    -- that died, and may be taken over
    claimed_at  bigint not null,
    made_at     bigint,
    -- why it could not be made, so resize-all does not retry a bad image forever
    failure     text,
    constraint shoebox_variants_photo_name_recipe_key unique (photo_id, name, recipe_hash),
    constraint shoebox_variants_ready_check
        check (state <> 'ready' or (object_key is not null and image_type is not null and made_at is not null))
);

-- The upload-form limit, one row per uploader and form style. A window row is decided and moved
-- in the same statement that writes the photo (an upsert re-checks its condition against the
-- latest row under the row's lock, so concurrent forms are decided one at a time and exactly).
-- A window opens with the first form after the previous one closed and lasts a minute; it holds
-- at most the configured number of forms.
create table shoebox_form_windows (
    -- the host's uploader id, as in shoebox_photos
    uploader_id  text not null,
    -- 'page' (rendered into a page before a file is chosen) or 'script' (asked for by the
    -- upload script with a declared type): counted apart, so page views cannot use up uploads
    style        text not null
        constraint shoebox_form_windows_style_check check (style in ('page', 'script')),
    opened_at    bigint not null,
    forms        bigint not null,
    constraint shoebox_form_windows_pkey primary key (uploader_id, style)
);

-- One row per job that must run on one machine at a time (serve's interval clean-up): the
-- holder takes it with a conditional update and holds it until held_until.
create table shoebox_job_locks (
    name       text primary key,
    holder     text not null,
    held_until bigint not null
);
