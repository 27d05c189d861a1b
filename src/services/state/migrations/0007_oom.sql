-- Whether the kernel's OOM killer ended the proc's last run (issue 12 §10): shown by `vr procs
-- list`, proc events and the proc's log, not only as exit 137.
ALTER TABLE procs ADD COLUMN oom_killed INTEGER NOT NULL DEFAULT 0;
