// zlib for FipsData: gzip-compressed idx files (Debian's dataset-fashion-mnist).
#include <zlib.h>
