DROP INDEX IF EXISTS login_failures_account_ip_time;
