-- Accounts, sessions and the photo lifecycle.
--
-- Times are bigint milliseconds since the Unix epoch, and ids are text (uuids): the SQLite
-- schema beside this one is the same, so one set of queries serves both backends.

create table users (
    user_id       text primary key,
    -- lowercased by the application, so the unique constraint means one account per person
    email         text not null,
    password_hash text not null,
    created_at    bigint not null,
    constraint users_email_key unique (email)
);

create table sessions (
    -- sha-256 of the cookie's token: a leaked table cannot be replayed as cookies
    token_hash text primary key,
    user_id    text not null references users (user_id) on delete cascade,
    csrf_token text not null,
    created_at bigint not null,
    expires_at bigint not null
);
create index sessions_user_id_idx on sessions (user_id);

-- One row per photo, written when the upload form is signed, before any byte is uploaded.
create table photos (
    photo_id        text primary key,
    kind            text not null,
    -- the configured bucket name, not the S3 one: buckets can be renamed in S3 by configuration
    bucket          text not null,
    uploader_id     text not null references users (user_id),
    state           text not null
        constraint photos_state_check check (state in ('signed', 'ready', 'in_use', 'deleted')),
    incoming_key    text not null constraint photos_incoming_key_key unique,
    object_key      text constraint photos_object_key_key unique,
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
    -- a tombstone always says when and why; a live photo has neither
    constraint photos_deleted_check
        check ((state = 'deleted') = (deleted_at is not null and deleted_reason is not null)),
    constraint photos_ready_check
        check (state not in ('ready', 'in_use') or (object_key is not null and image_type is not null))
);
-- the signed-in user's page and the per-user signing rate limit
create index photos_uploader_created_idx on photos (uploader_id, created_at);
-- the clean-up job's scans
create index photos_state_created_idx on photos (state, created_at);
