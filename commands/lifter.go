package commands

// LiftEnded asks Run to lift, now, the outcasts of bans that are no longer
// active: the command bus calls it when another gavel removed a ban, so
// that the outcasts this gavel set for that ban in its own rooms are lifted
// as they are after an unban through this gavel.
func (s *Service) LiftEnded() { s.wakeLifter() }
