module krypton-sandbox/entry

go 1.22
