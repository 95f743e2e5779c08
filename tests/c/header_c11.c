/* Compiles the public header alone as C11 (-Wall -Wextra -Werror -pedantic). */
#include "wtdatagram.h"

int wtd_header_c11_compiles(void) { return (int)WTD_OK; }
