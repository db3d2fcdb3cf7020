/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A CRD's `pattern` as a POSIX extended regular expression for regcomp(3).
 *
 * kube-apiserver checks patterns with Go's regexp (RE2 syntax); koc-apiserver
 * and the types koc-gen-types writes check them with regcomp.  This is the
 * one translation both use, so an object is accepted or refused alike:
 * \d \w \s and their negations, (?:...) groups, escaped punctuation,
 * \a \f \t \n \r \v, and bracket expressions rebuilt so that ], -, ^ and [
 * (escaped or in RE2's positions) stay literals.  What POSIX cannot say (\b,
 * \A, \z, \pN, \x, backreferences, flag groups, lookarounds, \D \W \S inside
 * brackets) is refused with a message naming it, never passed on with a
 * different meaning.
 *
 * Depends on nothing but libc: koc-gen-types compiles this file on its own.
 */
#pragma once

#include <stddef.h>

/* *ret_posix (malloc'd, for the caller to free) on success.  -EINVAL with a
 * message in err for a pattern that cannot be translated, -ENOMEM.  The
 * result is not compiled here: regcomp may still refuse it. */
int koc__pattern_to_posix(const char *pattern, char **ret_posix, char *err, size_t errlen);
