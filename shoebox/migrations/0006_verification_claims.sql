-- Completion's claim on a photo's verification, so that of concurrent completions of one
-- upload (retries, double clicks, a page and a script, on any dyno) exactly one reads the upload
-- and writes the served original, and the others wait for it. verifying_by names the claim and
-- verifying_until is when another completion may take it over (the process holding it died).
alter table shoebox_photos add column verifying_by text;
alter table shoebox_photos add column verifying_until bigint;
