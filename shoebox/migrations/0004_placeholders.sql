-- Placeholders: each verified photo's ThumbHash (about 25 bytes: colours, rough shapes, alpha
-- and aspect ratio), which pages show until the image has loaded. Stored as base64 text, so one
-- column type serves Postgres and SQLite alike. Null until verification makes it; photos
-- verified before this migration get theirs from resize-all.
alter table shoebox_photos add column placeholder text;
