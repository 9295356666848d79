package apikey

// CacheLen returns the number of keys a remembers.
func CacheLen(a *Authenticator) int { return a.cache.Len() }
