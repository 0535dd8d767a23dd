package api

// SetKeys replaces the keys and rules that verify admin tokens, as a
// config reload does. The keys are checked first: on an error the old ones
// stay. Requests in flight finish with the keys they started with.
func (s *Server) SetKeys(k AdminKeys) error {
	v, err := newVerifier(k, s.now)
	if err != nil {
		return err
	}
	s.verifier.ring.Store(v.ring.Load())
	if !v.hasKeys() {
		s.log.Warn("the admin API has no keys: every command will be refused (set http.admin_token)")
	}
	return nil
}
