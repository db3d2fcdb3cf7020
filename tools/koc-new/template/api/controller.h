/* The __KIND__ controller (__GROUP__/__VERSION__), written by `koc-new api`. */
#ifndef __KUPPER___CONTROLLER_H
#define __KUPPER___CONTROLLER_H

#include <koc/koc.h>

/* Registers the controller with the manager (loop thread, before
 * koc_manager_run): 0 with *ret the controller (koc_controller_unref it
 * after koc_manager_run returned), or a negative errno with err saying
 * why. */
int __KIDENT___controller_setup(koc_manager *m, koc_controller **ret, koc_error *err);

#endif
