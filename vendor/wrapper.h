/* bindgen input for zkutil (our own file, not Apache's).
 * THREADED must come before the header: zookeeper.h declares the synchronous API
 * (zoo_create, zoo_get, ...) only under #ifdef THREADED. */
#define THREADED 1
#include <zookeeper.h>
#include <zookeeper_version.h>
