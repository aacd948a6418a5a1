// The fan pages: the concert list and the waiting room with the purchase.
