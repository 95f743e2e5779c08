// Compiles the public header alone as C++17 (-Wall -Wextra -Werror -pedantic).
#include "wtdatagram.h"

int wtd_header_cxx17_compiles() { return static_cast<int>(WTD_OK); }
