CREATE INDEX login_failures_account_ip_time ON login_failures (account, ip, time);
