--
-- 40_untracked_writer: the late-commit guard with a writer whose session
-- has track_activities off.  Such a session publishes no transaction start
-- time in pg_stat_activity, so the guard cannot see when its open
-- transaction started; the proc array still shows that one is open, and it
-- cannot have started before its session did.  The run then reads only rows
-- stamped before that session's start (and warns once): a row the writer
-- stamped with now() and commits after the run is not passed by the cursor.
--
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE SCHEMA t40u;
CREATE TABLE t40u.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE t40u.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('untracked', 't40u.src', 't40u.tgt', watermark_column => 'updated_at') > 0 AS created;

\echo '-- a writer with track_activities off opens a transaction and writes a row'
SELECT dblink_connect('w40', format('host=%s port=%s dbname=%s options=''-c track_activities=off''',
									split_part(current_setting('unix_socket_directories'), ',', 1),
									current_setting('port'), current_database()));
SELECT dblink_exec('w40', 'BEGIN');
SELECT dblink_exec('w40', $$INSERT INTO t40u.src (id, v) VALUES (1, 'written by the untracked session')$$);
SELECT a.state, a.xact_start IS NULL AS no_xact_start
  FROM pg_stat_activity a, dblink('w40', 'SELECT pg_backend_pid()') AS w(pid integer)
 WHERE a.pid = w.pid;

\echo '-- a row committed meanwhile, stamped after the writer started'
INSERT INTO t40u.src (id, v) VALUES (2, 'committed');
CALL incetl.run('untracked');
-- nothing read: the bound is the untracked session's start
SELECT batches, extracted, inserted FROM regress.last_run('untracked');
SELECT * FROM regress.cursor('untracked');

\echo '-- the writer commits; the next run reads both rows'
SELECT dblink_exec('w40', 'COMMIT');
CALL incetl.run('untracked');
SELECT extracted, inserted FROM regress.last_run('untracked');
SELECT id, v FROM t40u.tgt ORDER BY id;

\echo '-- an untracked session without an open transaction holds nothing back'
INSERT INTO t40u.src (id, v) VALUES (3, 'three');
CALL incetl.run('untracked');
SELECT extracted, inserted FROM regress.last_run('untracked');

SELECT dblink_disconnect('w40');
SELECT incetl.drop_pipeline('untracked');
DROP SCHEMA t40u CASCADE;
DROP EXTENSION dblink;
