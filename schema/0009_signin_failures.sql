-- Sign-in throttling counts recent failed sign-ins by remote address and by user name from the
-- audit trail; this keeps that count to the failures instead of every audited action.
CREATE INDEX audit_event_signin_failure_idx ON audit_event (at)
  WHERE action = 'auth.signin' AND outcome = 'failure';
