-- The upload-form limit, one row per uploader and form style. Counting photo rows and then
-- inserting needed a lock and five round trips per form; a window row is decided and moved in
-- the same statement that writes the photo (an upsert re-checks its condition against the
-- latest row under the row's lock, so concurrent forms are decided one at a time and exactly).
--
-- A window opens with the first form after the previous one closed and lasts a minute; it holds
-- at most the configured number of forms.
create table form_windows (
    uploader_id  text not null references users (user_id) on delete cascade,
    -- 'page' (rendered into a page before a file is chosen) or 'script' (asked for by the
    -- upload script with a declared type): counted apart, so page views cannot use up uploads
    style        text not null
        constraint form_windows_style_check check (style in ('page', 'script')),
    opened_at    bigint not null,
    forms        bigint not null,
    constraint form_windows_pkey primary key (uploader_id, style)
);
